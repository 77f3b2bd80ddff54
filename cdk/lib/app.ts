import { App } from 'aws-cdk-lib';
import { parametersFromContext } from './context';
import { ScanGateStack } from './stack';

/** Adds the ScanGate stack, configured from the app's context, to `app`. */
export function buildApp(app: App, env: NodeJS.ProcessEnv = process.env): ScanGateStack {
  const p = parametersFromContext(app.node, env);
  return new ScanGateStack(app, p.stackName, {
    description: 'scangate: container-image security gate, a CodePipeline custom action',
    vpcId: p.vpcId,
    reportsKmsKeyArn: p.reportsKmsKeyArn,
    scanGate: p.props,
    // A VPC lookup needs a concrete account and region; otherwise the stack
    // stays environment-agnostic and synthesizes with no AWS credentials.
    env: p.vpcId ? { account: env.CDK_DEFAULT_ACCOUNT, region: env.CDK_DEFAULT_REGION } : undefined,
  });
}
