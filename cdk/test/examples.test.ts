import { Template } from 'aws-cdk-lib/assertions';
import { ExamplePipelineStack } from '../examples/pipeline';
import { ACCOUNT, newApp, only, REGION } from './helpers';

function stages(ecrBuildAndPublish: boolean): any[] {
  const stack = new ExamplePipelineStack(newApp(), 'Example', { env: { account: ACCOUNT, region: REGION }, ecrBuildAndPublish });
  return only(Template.fromStack(stack), 'AWS::CodePipeline::Pipeline').Properties.Stages;
}

const action = (all: any[], stage: string) => all.find((s) => s.Name === stage).Actions[0];

test('example: CodeBuild exports IMAGE_URL, the gate scans it, a later action reads the verdict', () => {
  const all = stages(false);
  expect(all.map((s) => s.Name)).toEqual(['Source', 'Build', 'Gate', 'Release']);
  expect(action(all, 'Build').Namespace).toBe('BuildVariables');
  const gate = action(all, 'Gate');
  expect(gate.ActionTypeId).toEqual({ Category: 'Test', Owner: 'Custom', Provider: 'ScanGate', Version: '1' });
  expect(gate.Configuration.ImageUrl).toBe('#{BuildVariables.IMAGE_URL}');
  expect(gate.Namespace).toBe('Gate');
  const env = JSON.parse(action(all, 'Release').Configuration.EnvironmentVariables);
  expect(env).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'VERDICT', value: '#{Gate.VERDICT}' })]));
});

test('example: the ECRBuildAndPublish variant scans the published digest', () => {
  const all = stages(true);
  expect(action(all, 'Build').ActionTypeId).toMatchObject({ Owner: 'AWS', Provider: 'ECRBuildAndPublish' });
  expect(JSON.stringify(action(all, 'Gate').Configuration.ImageUrl)).toContain('@#{BuildVariables.ECR_IMAGE_DIGEST_ID}');
});
