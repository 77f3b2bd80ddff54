import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Template } from 'aws-cdk-lib/assertions';
import { buildApp } from '../lib/app';
import { parametersFromContext } from '../lib/context';
import { REPO_ROOT } from '../lib/scangate';
import { flat, IMAGE_IN_TEMPLATE, IMAGE_URI, newApp, only } from './helpers';

const CDK_DIR = path.resolve(__dirname, '..');
const CDK_CLI = path.join(CDK_DIR, 'node_modules', '.bin', 'cdk');

const outDirs: string[] = [];
afterAll(() => {
  for (const d of outDirs) fs.rmSync(d, { recursive: true, force: true });
});

/**
 * `cdk synth` through the real CLI and cdk.json, with any Docker call made
 * to fail (CDK_DOCKER is the docker executable the CDK uses) and no AWS
 * credentials, network notices or telemetry.
 */
function cliSynth(args: string[], extraEnv: Record<string, string> = {}): { out: string; stdout: string } {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), 'scangate-cdk-'));
  outDirs.push(out);
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    CI: 'true',
    CDK_DOCKER: '/bin/false',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
    AWS_EC2_METADATA_DISABLED: 'true',
    ...extraEnv,
  };
  const r = spawnSync(CDK_CLI, ['synth', '--no-notices', '--no-version-reporting', '-o', out, ...args], {
    cwd: CDK_DIR,
    env,
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.status !== 0) {
    throw new Error(`cdk synth failed (${r.status ?? r.signal}):\n${r.stderr}\n${r.stdout}`);
  }
  return { out, stdout: r.stdout };
}

function container(out: string, stack = 'ScanGate'): any {
  const template = Template.fromJSON(JSON.parse(fs.readFileSync(path.join(out, `${stack}.template.json`), 'utf8')));
  return only(template, 'AWS::ECS::TaskDefinition').Properties.ContainerDefinitions[0];
}

/** Source paths of the Dockerfile's COPY instructions that read the build context. */
function dockerfileContextPaths(): string[] {
  const text = fs.readFileSync(path.join(REPO_ROOT, 'Dockerfile'), 'utf8');
  const paths = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^\s*(?:COPY|ADD)\s+(.*)$/i.exec(line);
    if (!m) continue;
    const words = m[1].trim().split(/\s+/);
    if (words.some((w) => w.startsWith('--from'))) continue;
    const sources = words.filter((w) => !w.startsWith('--')).slice(0, -1);
    for (const s of sources) paths.add(s.replace(/^\.\//, '').replace(/\/+$/, ''));
  }
  return [...paths].sort();
}

describe('cdk synth through the CLI, without Docker', () => {
  test('with an image URI from the command line', () => {
    const { out } = cliSynth(['-c', `imageUri=${IMAGE_URI}`, '-c', 'minWorkers=2', '-c', 'maxWorkers=6']);
    expect(flat(container(out).Image)).toBe(IMAGE_IN_TEMPLATE);
    // no image asset to build
    const assets = JSON.parse(fs.readFileSync(path.join(out, 'ScanGate.assets.json'), 'utf8'));
    expect(Object.keys(assets.dockerImages ?? {})).toHaveLength(0);
  }, 180_000);

  test('with the image built from the repository Dockerfile: only the build context is staged', () => {
    const { out } = cliSynth([]);
    const assets = JSON.parse(fs.readFileSync(path.join(out, 'ScanGate.assets.json'), 'utf8'));
    const images = Object.values(assets.dockerImages) as any[];
    expect(images).toHaveLength(1);
    expect(images[0].source).toMatchObject({ dockerFile: 'Dockerfile', platform: 'linux/amd64' });
    // the build context holds exactly what the Dockerfile copies, not the
    // repository's target/ (gigabytes) or this app's node_modules
    const staged = fs.readdirSync(path.join(out, images[0].source.directory)).sort();
    expect(dockerfileContextPaths().length).toBeGreaterThan(0);
    // CDK always stages .dockerignore, which docker build reads too
    expect(staged).toEqual(['.dockerignore', 'Dockerfile', ...dockerfileContextPaths()].sort());
    expect(JSON.stringify(container(out).Image)).toContain('container-assets');
  }, 180_000);
});

describe('app context', () => {
  test('SCANGATE_IMAGE_URI stands in for -c imageUri', () => {
    const app = newApp();
    const stack = buildApp(app, { SCANGATE_IMAGE_URI: IMAGE_URI });
    const td = only(Template.fromStack(stack), 'AWS::ECS::TaskDefinition').Properties;
    expect(flat(td.ContainerDefinitions[0].Image)).toBe(IMAGE_IN_TEMPLATE);
    expect(stack.stackName).toBe('ScanGate');
  });

  test('every parameter reaches the template', () => {
    const app = newApp({
      stackName: 'ScanGateProd',
      imageUri: IMAGE_URI,
      provider: 'ProdGate',
      category: 'Deploy',
      actionVersion: '2',
      cpu: '1024',
      memoryLimitMiB: 2048,
      concurrency: '3',
      minWorkers: '2',
      maxWorkers: '8',
      targetCpuUtilization: '45',
      reportsPrefix: 'prod',
      reportsExpirationDays: '30',
      reportsVersioned: 'true',
      reportsKmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      ecrRepositoryArns: 'arn:aws:ecr:eu-west-1:123456789012:repository/a, arn:aws:ecr:eu-west-1:123456789012:repository/b',
      logRetentionDays: 30,
    });
    const stack = buildApp(app, {});
    expect(stack.stackName).toBe('ScanGateProd');
    const t = Template.fromStack(stack);
    const at = only(t, 'AWS::CodePipeline::CustomActionType').Properties;
    expect([at.Category, at.Provider, at.Version]).toEqual(['Deploy', 'ProdGate', '2']);
    const td = only(t, 'AWS::ECS::TaskDefinition').Properties;
    expect([td.Cpu, td.Memory]).toEqual(['1024', '2048']);
    const env = Object.fromEntries((td.ContainerDefinitions[0].Environment as any[]).map((e) => [e.Name, flat(e.Value)]));
    expect(env.SCANGATE_CONCURRENCY).toBe('3');
    expect(env.SCANGATE_REPORTS).toMatch(/\/prod\/$/);
    const target = only(t, 'AWS::ApplicationAutoScaling::ScalableTarget').Properties;
    expect([target.MinCapacity, target.MaxCapacity]).toEqual([2, 8]);
    const cpu = (Object.values(t.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')) as any[]).find(
      (p) => p.Properties.TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification,
    );
    expect(cpu.Properties.TargetTrackingScalingPolicyConfiguration.TargetValue).toBe(45);
    const bucket = only(t, 'AWS::S3::Bucket').Properties;
    expect(bucket.LifecycleConfiguration.Rules[0].ExpirationInDays).toBe(30);
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault).toEqual({
      SSEAlgorithm: 'aws:kms',
      KMSMasterKeyID: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
    });
    expect(only(t, 'AWS::Logs::LogGroup').Properties.RetentionInDays).toBe(30);
    const policies = JSON.stringify(t.findResources('AWS::IAM::Policy'));
    expect(policies).toContain('repository/a');
    expect(policies).toContain('repository/b');
    expect(policies).toContain('kms:GenerateDataKey');
  });

  test.each([
    ['cpu', 'lots', /cpu: expected a whole number/],
    ['reportsVersioned', 'yes', /reportsVersioned: expected true or false/],
    ['category', 'Testing', /category: one of/],
    ['logRetentionDays', '31', /not a CloudWatch Logs retention/],
  ])('bad %s=%s is rejected with a message', (key, value, message) => {
    const app = newApp({ [key]: value });
    expect(() => parametersFromContext(app.node, {})).toThrow(message);
  });
});
