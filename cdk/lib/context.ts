import { Duration } from 'aws-cdk-lib';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ACTION_CATEGORIES, ActionCategory, ScanGateProps } from './scangate';

/**
 * The app's parameters: `-c key=value` on the command line or `context` in
 * cdk.json. Values from the command line are strings, values from cdk.json
 * may be numbers or booleans: both are accepted.
 */
export interface AppParameters {
  readonly stackName: string;
  readonly vpcId?: string;
  /** Props for the construct, minus the `reportsEncryptionKey`, which needs a scope. */
  readonly props: Omit<ScanGateProps, 'reportsEncryptionKey'>;
  readonly reportsKmsKeyArn?: string;
}

/** Context keys the app reads; README.md documents each. */
export const CONTEXT_KEYS = [
  'stackName',
  'imageUri',
  'provider',
  'category',
  'actionVersion',
  'vpcId',
  'cpu',
  'memoryLimitMiB',
  'concurrency',
  'minWorkers',
  'maxWorkers',
  'targetCpuUtilization',
  'reportsPrefix',
  'reportsExpirationDays',
  'reportsVersioned',
  'reportsKmsKeyArn',
  'ecrRepositoryArns',
  'logRetentionDays',
] as const;

type Get = (key: (typeof CONTEXT_KEYS)[number]) => unknown;

export function parametersFromContext(node: Construct['node'], env: NodeJS.ProcessEnv = process.env): AppParameters {
  const get: Get = (key) => node.tryGetContext(key);
  const str = (key: Parameters<Get>[0]): string | undefined => {
    const v = get(key);
    if (v === undefined || v === null || v === '') return undefined;
    return String(v);
  };
  const int = (key: Parameters<Get>[0]): number | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v)) throw new Error(`context ${key}: expected a whole number, got ${JSON.stringify(v)}`);
    return Number(v);
  };
  const bool = (key: Parameters<Get>[0]): boolean | undefined => {
    const v = str(key);
    if (v === undefined) return undefined;
    if (v === 'true' || v === 'false') return v === 'true';
    throw new Error(`context ${key}: expected true or false, got ${JSON.stringify(v)}`);
  };

  const category = str('category');
  if (category !== undefined && !(ACTION_CATEGORIES as readonly string[]).includes(category)) {
    throw new Error(`context category: one of ${ACTION_CATEGORIES.join(', ')}, got ${JSON.stringify(category)}`);
  }
  const retention = int('logRetentionDays');
  if (retention !== undefined && !Object.values(logs.RetentionDays).includes(retention)) {
    throw new Error(`context logRetentionDays: ${retention} is not a CloudWatch Logs retention (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, …)`);
  }
  const expiration = int('reportsExpirationDays');
  const repos = str('ecrRepositoryArns')
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);

  return {
    stackName: str('stackName') ?? 'ScanGate',
    vpcId: str('vpcId'),
    reportsKmsKeyArn: str('reportsKmsKeyArn'),
    props: {
      // an env var too, so CI can synthesize without touching the command line
      imageUri: str('imageUri') ?? (env.SCANGATE_IMAGE_URI || undefined),
      provider: str('provider'),
      category: category as ActionCategory | undefined,
      actionVersion: str('actionVersion'),
      cpu: int('cpu'),
      memoryLimitMiB: int('memoryLimitMiB'),
      concurrency: int('concurrency'),
      minWorkers: int('minWorkers'),
      maxWorkers: int('maxWorkers'),
      targetCpuUtilization: int('targetCpuUtilization'),
      reportsPrefix: str('reportsPrefix'),
      reportsExpiration: expiration === undefined ? undefined : Duration.days(expiration),
      reportsVersioned: bool('reportsVersioned'),
      ecrRepositoryArns: repos?.length ? repos : undefined,
      logRetention: retention as logs.RetentionDays | undefined,
    },
  };
}
