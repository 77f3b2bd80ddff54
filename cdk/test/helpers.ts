import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { ScanGate, ScanGateProps } from '../lib/scangate';

// The feature flags the CLI app runs with, so tests see the same template.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const cdkJson = require('../cdk.json') as { context: Record<string, unknown> };

export const ACCOUNT = '123456789012';
export const REGION = 'eu-west-1';
export const IMAGE_URI = `${ACCOUNT}.dkr.ecr.${REGION}.amazonaws.com/scangate:test`;
/** IMAGE_URI as the template writes it (through the ECR repository, see flat()). */
export const IMAGE_IN_TEMPLATE = `${ACCOUNT}.dkr.ecr.${REGION}.\${AWS::URLSuffix}/scangate:test`;

export function newApp(context: Record<string, unknown> = {}): App {
  return new App({ context: { ...cdkJson.context, ...context } });
}

/**
 * A ScanGate in a stack with a concrete account and region, so ARNs in the
 * template are plain strings apart from the partition. The image comes from
 * a registry URI: synthesis needs no Docker.
 */
export function synth(props: ScanGateProps = {}): { stack: Stack; gate: ScanGate; template: Template } {
  const stack = new Stack(newApp(), 'Test', { env: { account: ACCOUNT, region: REGION } });
  const gate = new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, ...props });
  return { stack, gate, template: Template.fromStack(stack) };
}

/** The one resource of `type` in the template. */
export function only(template: Template, type: string): { logicalId: string; Properties: any } {
  const found = Object.entries(template.findResources(type));
  if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
  const [logicalId, r] = found[0];
  return { logicalId, Properties: (r as any).Properties };
}

/**
 * A CloudFormation value as one string: Fn::Join flattened, Ref and GetAtt
 * shown as ${Name} and ${Name.Attr}. Lets tests compare ARNs and URLs as
 * text.
 */
export function flat(v: any): string {
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v && typeof v === 'object') {
    if ('Fn::Join' in v) {
      const [sep, parts] = v['Fn::Join'];
      return (parts as any[]).map(flat).join(sep);
    }
    if ('Ref' in v) return `\${${v.Ref}}`;
    if ('Fn::GetAtt' in v) return `\${${(v['Fn::GetAtt'] as string[]).join('.')}}`;
  }
  throw new Error(`cannot flatten ${JSON.stringify(v)}`);
}

export interface Statement {
  Sid?: string;
  Effect: string;
  Action: string[];
  Resource: string[];
  Condition?: unknown;
}

/** The statements of every inline policy attached to the role `roleLogicalId`, normalized. */
export function roleStatements(template: Template, roleLogicalId: string): Statement[] {
  const out: Statement[] = [];
  for (const r of Object.values(template.findResources('AWS::IAM::Policy')) as any[]) {
    const roles = (r.Properties.Roles as any[]).map((x) => x.Ref);
    if (!roles.includes(roleLogicalId)) continue;
    for (const s of r.Properties.PolicyDocument.Statement) {
      out.push({
        Sid: s.Sid,
        Effect: s.Effect,
        Action: ([] as string[]).concat(s.Action),
        Resource: ([] as any[]).concat(s.Resource).map(flat),
        Condition: s.Condition,
      });
    }
  }
  return out;
}
