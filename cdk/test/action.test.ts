import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { ScanGateAction, ScanGateActionProps } from '../lib/action';
import { ScanGate } from '../lib/scangate';
import { ACCOUNT, IMAGE_URI, newApp, only, REGION } from './helpers';

/** Source → Build (namespace BuildVariables) → the gate, as the README shows. */
function pipeline(gate: (build: codepipeline.Artifact) => ScanGateActionProps, withScanGate = false) {
  const stack = new Stack(newApp(), 'Pipeline', { env: { account: ACCOUNT, region: REGION } });
  const scanGate = withScanGate ? new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, provider: 'TeamGate', actionVersion: '2' }) : undefined;
  const source = new codepipeline.Artifact('Source');
  const built = new codepipeline.Artifact('Built');
  const action = new ScanGateAction({ ...gate(built), ...(scanGate ? { actionType: scanGate } : {}) });
  new codepipeline.Pipeline(stack, 'P', {
    stages: [
      {
        stageName: 'Source',
        actions: [new actions.S3SourceAction({ actionName: 'Source', bucket: new s3.Bucket(stack, 'Src'), bucketKey: 'src.zip', output: source })],
      },
      {
        stageName: 'Build',
        actions: [
          new actions.CodeBuildAction({
            actionName: 'Build',
            project: new codebuild.PipelineProject(stack, 'Build'),
            input: source,
            outputs: [built],
            variablesNamespace: 'BuildVariables',
          }),
        ],
      },
      {
        stageName: 'Gate',
        actions: [action, new actions.ManualApprovalAction({ actionName: 'Note', additionalInformation: action.variable('REPORT_URI'), runOrder: 2 })],
      },
    ],
  });
  const stages = only(Template.fromStack(stack), 'AWS::CodePipeline::Pipeline').Properties.Stages as any[];
  return stages.find((s) => s.Name === 'Gate').Actions as any[];
}

test('a gate action with the DESIGN.md configuration', () => {
  const [gate, note] = pipeline((built) => ({
    actionName: 'ScanImage',
    imageUrl: '#{BuildVariables.IMAGE_URL}',
    input: built,
    highThreshold: 3,
    fixableOnly: true,
    engine: 'inspector',
    variablesNamespace: 'Gate',
  }));
  expect(gate.ActionTypeId).toEqual({ Category: 'Test', Owner: 'Custom', Provider: 'ScanGate', Version: '1' });
  expect(gate.Configuration).toEqual({ ImageUrl: '#{BuildVariables.IMAGE_URL}', HighThreshold: '3', FixableOnly: 'true', Engine: 'inspector' });
  expect(gate.InputArtifacts).toEqual([{ Name: 'Built' }]);
  expect(gate.Namespace).toBe('Gate');
  // the gate's output variables are readable downstream
  expect(note.Configuration.CustomData).toBe('#{Gate.REPORT_URI}');
});

test('coordinates come from the deployed ScanGate construct', () => {
  const [gate] = pipeline((built) => ({ actionName: 'ScanImage', input: built }), true);
  expect(gate.ActionTypeId).toEqual({ Category: 'Test', Owner: 'Custom', Provider: 'TeamGate', Version: '2' });
  // nothing set: the worker's defaults apply and the image comes from the artifact
  expect(gate.Configuration ?? {}).toEqual({});
});
