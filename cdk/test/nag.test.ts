// cdk-nag AwsSolutions over the default stack. Each suppression names the
// finding and why it does not apply; any new finding fails this test.
import { Aspects, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, NagSuppressions } from 'cdk-nag';
import { ScanGate } from '../lib/scangate';
import { ACCOUNT, IMAGE_URI, newApp, REGION } from './helpers';

test('AwsSolutions: no unjustified findings', () => {
  const stack = new Stack(newApp(), 'Nag', { env: { account: ACCOUNT, region: REGION } });
  const gate = new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI });
  NagSuppressions.addResourceSuppressions(gate.reportsBucket, [
    { id: 'AwsSolutions-S1', reason: 'Only the workers write here; object-level access is audited with CloudTrail data events, which the account configures centrally instead of one access-log bucket per gate.' },
  ], true);
  NagSuppressions.addResourceSuppressionsByPath(stack, '/Nag/Gate/Vpc/Resource', [
    { id: 'AwsSolutions-VPC7', reason: 'The default VPC only carries the workers\' outbound HTTPS; teams with flow-log requirements pass their own VPC (vpc / vpcId).' },
  ]);
  NagSuppressions.addResourceSuppressions(gate.taskDefinition, [
    { id: 'AwsSolutions-ECS2', reason: 'The environment is non-secret configuration (DESIGN.md variables); registry credentials go through ECS secrets.' },
  ]);
  NagSuppressions.addResourceSuppressions(gate.taskRole, [
    {
      id: 'AwsSolutions-IAM5',
      reason: 'Resource "*" only for actions IAM cannot scope (job results, ScanSbom, ListFindings, ECR token); task/CLUSTER/* because task ids exist only at run time; reports objects under the prefix; repository/* is the documented default, narrowed by ecrRepositoryArns or allowRepository().',
      appliesTo: [
        'Resource::*',
        { regex: '/^Resource::arn:aws:ecs:.*:task\\/<.*>\\/\\*$/' },
        { regex: '/^Resource::arn:aws:ecr:.*:repository\\/\\*$/' },
        { regex: '/^Resource::<GateReports.*\\.Arn>\\/\\*$/' },
      ],
    },
  ], true);
  NagSuppressions.addResourceSuppressions(gate.taskDefinition.obtainExecutionRole(), [
    { id: 'AwsSolutions-IAM5', reason: 'ecr:GetAuthorizationToken has no resource type (CDK-generated execution role policy).', appliesTo: ['Resource::*'] },
  ], true);
  Aspects.of(stack).add(new AwsSolutionsChecks());
  Template.fromStack(stack); // fails on any unsuppressed error
  const warnings = Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('AwsSolutions-.*'));
  expect(warnings.map((w) => `${w.id}: ${String(w.entry.data).slice(0, 80)}`)).toEqual([]);
});
