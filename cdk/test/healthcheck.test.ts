import { execFile } from 'child_process';
import * as http from 'http';
import { AddressInfo } from 'net';
import { only, synth } from './helpers';

/**
 * Runs the container health check the template declares, the way ECS does
 * (the exec form, `CMD` dropped), against a real HTTP server on this
 * machine. The worker image has bash, which is all the check needs.
 */
function runHealthCheck(port: number): Promise<number> {
  const { template } = synth({ healthPort: port });
  const command: string[] = only(template, 'AWS::ECS::TaskDefinition').Properties.ContainerDefinitions[0].HealthCheck.Command;
  expect(command[0]).toBe('CMD');
  return new Promise((resolve) => {
    execFile(command[1], command.slice(2), { timeout: 5000 }, (err) => {
      resolve(err ? ((err as any).code ?? 1) : 0);
    });
  });
}

function serve(handler: http.RequestListener): Promise<http.Server> {
  return new Promise((resolve) => {
    const server = http.createServer(handler);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

const port = (s: http.Server) => (s.address() as AddressInfo).port;

describe('container health check', () => {
  let server: http.Server;
  let healthy = true;
  const paths: string[] = [];

  beforeAll(async () => {
    server = await serve((req, res) => {
      paths.push(req.url ?? '');
      if (req.url === '/healthz' && healthy) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else {
        res.writeHead(503).end('not ready\n');
      }
    });
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  test('passes when /healthz answers 200', async () => {
    healthy = true;
    expect(await runHealthCheck(port(server))).toBe(0);
    expect(paths[paths.length - 1]).toBe('/healthz');
  });

  test('fails when /healthz answers an error', async () => {
    healthy = false;
    expect(await runHealthCheck(port(server))).not.toBe(0);
  });

  test('fails when nothing listens', async () => {
    const closed = await serve(() => undefined);
    const p = port(closed);
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await runHealthCheck(p)).not.toBe(0);
  });
});
