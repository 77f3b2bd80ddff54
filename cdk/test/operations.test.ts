// Regression tests for the defects of issue 11 and the operations the
// stack provides on top of the worker's EMF metrics (DESIGN.md, Operations).
import { Duration, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { ScanGateAction } from '../lib/action';
import { METRICS_NAMESPACE, OPERATIONS, ScanGate } from '../lib/scangate';
import { ScanGateStack } from '../lib/stack';
import { ACCOUNT, IMAGE_URI, flat, newApp, only, REGION, roleStatements, synth } from './helpers';

function taskActions(props: Parameters<typeof synth>[0] = {}): string[] {
  const { template, gate, stack } = synth(props);
  const role = stack.getLogicalId(gate.taskRole.node.defaultChild as any);
  return roleStatements(template, role).flatMap((s) => s.Action);
}

describe('IAM per engine', () => {
  test('all engines by default: ecr-enhanced can read its findings from Inspector', () => {
    const a = taskActions();
    expect(a).toEqual(expect.arrayContaining(['inspector2:ListFindings', 'inspector-scan:ScanSbom', 'ecr:StartImageScan', 'ecr:DescribeImageScanFindings']));
    // pulls never check layer availability (that is a push API)
    expect(a).not.toContain('ecr:BatchCheckLayerAvailability');
  });

  test('inspector only: no ECR scan or Inspector findings rights', () => {
    const a = taskActions({ engines: ['inspector'] });
    expect(a).toContain('inspector-scan:ScanSbom');
    for (const x of ['inspector2:ListFindings', 'ecr:StartImageScan', 'ecr:DescribeImageScanFindings']) expect(a).not.toContain(x);
  });

  test('ecr-enhanced only: ListFindings, no StartImageScan, no ScanSbom', () => {
    const a = taskActions({ engines: ['ecr-enhanced'] });
    expect(a).toEqual(expect.arrayContaining(['inspector2:ListFindings', 'ecr:DescribeImageScanFindings']));
    expect(a).not.toContain('ecr:StartImageScan');
    expect(a).not.toContain('inspector-scan:ScanSbom');
  });

  test('unknown or no engines are rejected', () => {
    expect(() => synth({ engines: [] })).toThrow(/at least one engine/);
    expect(() => synth({ engines: ['trivy' as any] })).toThrow(/unknown engine "trivy"/);
  });

  test('task protection on its own cluster\'s tasks only', () => {
    const { template, gate, stack } = synth();
    const role = stack.getLogicalId(gate.taskRole.node.defaultChild as any);
    const s = roleStatements(template, role).find((x) => x.Sid === 'OwnTaskProtection')!;
    expect(s.Action.sort()).toEqual(['ecs:GetTaskProtection', 'ecs:UpdateTaskProtection']);
    expect(s.Resource.map(flat)).toEqual([expect.stringMatching(new RegExp(`:ecs:${REGION}:${ACCOUNT}:task/\\$\\{[A-Za-z0-9]+\\}/\\*$`))]);
  });
});

describe('action type URL templates', () => {
  test('name the bucket literally, the same on every deploy', () => {
    const urls = () => {
      const at = only(synth().template, 'AWS::CodePipeline::CustomActionType').Properties.Settings;
      return [flat(at.EntityUrlTemplate), flat(at.ExecutionUrlTemplate)];
    };
    const [entity, execution] = urls();
    const name = `scangate-${ACCOUNT}-${REGION}-scangate`;
    expect(entity).toBe(`https://s3.console.aws.amazon.com/s3/buckets/${name}?region=${REGION}&prefix=jobs/`);
    expect(execution).toContain(`/object/${name}?`);
    expect(urls()).toEqual([entity, execution]);
    expect(only(synth().template, 'AWS::S3::Bucket').Properties.BucketName).toBe(name);
  });

  test('an existing bucket is used as given, no bucket is created', () => {
    const stack = new Stack(newApp(), 'T', { env: { account: ACCOUNT, region: REGION } });
    const bucket = s3.Bucket.fromBucketName(stack, 'Old', 'kept-reports');
    const gate = new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, existingReportsBucket: bucket });
    const t = Template.fromStack(stack);
    t.resourceCountIs('AWS::S3::Bucket', 0);
    expect(flat(only(t, 'AWS::CodePipeline::CustomActionType').Properties.Settings.EntityUrlTemplate)).toContain('/buckets/kept-reports?');
    expect(gate.reportsUri).toBe('s3://kept-reports/');
  });

  test('long providers still give a valid bucket name', () => {
    const name = only(synth({ provider: 'A_Very_Long_Provider_Name_For_Gates' }).template, 'AWS::S3::Bucket').Properties.BucketName;
    expect(name.length).toBeLessThanOrEqual(63);
    expect(name).toMatch(/^[a-z0-9][a-z0-9-]*[a-z0-9]$/);
  });
});

test('a pipeline in the same stack depends on the action type', () => {
  const stack = new Stack(newApp(), 'P', { env: { account: ACCOUNT, region: REGION } });
  const gate = new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI });
  const src = new codepipeline.Artifact('Src');
  new codepipeline.Pipeline(stack, 'Pipeline', {
    stages: [
      { stageName: 'Source', actions: [new actions.S3SourceAction({ actionName: 'S', bucket: new s3.Bucket(stack, 'B'), bucketKey: 'k.zip', output: src })] },
      { stageName: 'Gate', actions: [new ScanGateAction({ actionName: 'Gate', actionType: gate, input: src })] },
    ],
  });
  const t = Template.fromStack(stack);
  const actionType = only(t, 'AWS::CodePipeline::CustomActionType').logicalId;
  const pipeline = Object.values(t.findResources('AWS::CodePipeline::Pipeline'))[0] as any;
  expect(pipeline.DependsOn).toContain(actionType);
});

describe('synth-time rejections', () => {
  test('a KMS alias as the reports key', () => {
    const stack = new Stack(newApp(), 'K', { env: { account: ACCOUNT, region: REGION } });
    const alias = kms.Key.fromKeyArn(stack, 'A', `arn:aws:kms:${REGION}:${ACCOUNT}:alias/reports`);
    expect(() => new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, reportsEncryptionKey: alias })).toThrow(/is an alias/);
    expect(() => new ScanGateStack(newApp(), 'S', { reportsKmsKeyArn: `arn:aws:kms:${REGION}:${ACCOUNT}:alias/reports` })).toThrow(/KMS alias/);
  });

  test('minWorkers 0: nothing would ever scale it out', () => {
    expect(() => synth({ minWorkers: 0 })).toThrow(/minWorkers must be at least 1/);
  });

  test('categories CodePipeline refuses for custom actions', () => {
    for (const c of ['Invoke', 'Approval', 'Compute']) expect(() => synth({ category: c as any })).toThrow(/unknown action category/);
    for (const c of ['Source', 'Build', 'Deploy', 'Test']) expect(() => synth({ category: c as any })).not.toThrow();
  });
});

describe('scaling and alarms on the EMF metrics', () => {
  test('target tracking on 100*SlotsBusy/Slots, CPU as a second policy', () => {
    const { template } = synth({ targetSlotUtilization: 80 });
    const policies = Object.values(template.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')) as any[];
    expect(policies).toHaveLength(2);
    const slots = policies.find((p) => p.Properties.TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification).Properties
      .TargetTrackingScalingPolicyConfiguration;
    expect(slots.TargetValue).toBe(80);
    const spec = slots.CustomizedMetricSpecification;
    expect(Object.keys(spec)).toEqual(['Metrics']);
    const metrics = spec.Metrics as any[];
    expect(metrics.map((m) => m.MetricStat?.Metric.MetricName ?? m.Expression)).toEqual(['SlotsBusy', 'Slots', '100 * busy / slots']);
    for (const m of metrics.slice(0, 2)) {
      expect(m.MetricStat.Metric).toMatchObject({ Namespace: 'ScanGate', Dimensions: [{ Name: 'Service', Value: 'ScanGate' }] });
    }
    expect(metrics.filter((m) => m.ReturnData)).toHaveLength(1);
  });

  test('alarms on missing workers, poll errors, each failure type, stuck jobs and too few tasks, to the topic', () => {
    const stack = new Stack(newApp(), 'A', { env: { account: ACCOUNT, region: REGION } });
    const topic = new sns.Topic(stack, 'Ops');
    new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, alarmTopic: topic, minWorkers: 2 });
    const t = Template.fromStack(stack);
    const alarms = Object.values(t.findResources('AWS::CloudWatch::Alarm')).map((a: any) => a.Properties);
    const by = (name: string, result?: string) =>
      alarms.filter((a) => a.MetricName === name && (result === undefined || a.Dimensions.some((d: any) => d.Name === 'Result' && d.Value === result)));
    expect(by('Slots')[0]).toMatchObject({ TreatMissingData: 'breaching', ComparisonOperator: 'LessThanThreshold', Namespace: 'ScanGate' });
    expect(by('PollErrors')).toHaveLength(1);
    for (const r of ['JobFailed', 'ConfigurationError', 'PermissionError', 'SystemUnavailable']) expect(by('JobsCompleted', r)).toHaveLength(1);
    expect(by('OldestJobAgeSeconds')[0]).toMatchObject({ Threshold: 3600, Statistic: 'Maximum' });
    const rule = only(t, 'AWS::Events::Rule').Properties;
    expect(rule.Targets).toEqual([expect.objectContaining({ Arn: { Ref: stack.getLogicalId(topic.node.defaultChild as any) } })]);
    expect(by('RunningTaskCount')[0]).toMatchObject({ Threshold: 2, Namespace: 'ECS/ContainerInsights' });
    for (const a of alarms) expect(a.AlarmActions).toHaveLength(1);
    const cluster = only(t, 'AWS::ECS::Cluster').Properties;
    expect(cluster.ClusterSettings).toEqual([{ Name: 'containerInsights', Value: 'enabled' }]);
  });
});

describe('operator views, secrets and network', () => {
  test('EventBridge rule on FAILED executions of this provider, queries, dashboard', () => {
    const { template } = synth({ provider: 'TeamGate' });
    const rule = only(template, 'AWS::Events::Rule').Properties;
    expect(rule.EventPattern).toEqual({
      source: ['aws.codepipeline'],
      'detail-type': ['CodePipeline Action Execution State Change'],
      detail: { state: ['FAILED'], type: { owner: ['Custom'], provider: ['TeamGate'], category: ['Test'] } },
    });
    const names = Object.values(template.findResources('AWS::Logs::QueryDefinition')).map((q: any) => q.Properties.Name).sort();
    expect(names).toEqual(['scangate/TeamGate/failures by type', 'scangate/TeamGate/recent results by pipeline', 'scangate/TeamGate/slow jobs']);
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  test('registry credentials: ECS secrets read by the execution role only, hosts required', () => {
    const stack = new Stack(newApp(), 'R', { env: { account: ACCOUNT, region: REGION } });
    const secret = new secretsmanager.Secret(stack, 'Login');
    const gate = new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, registryCredentials: secret, registryHosts: ['ghcr.io'] });
    const t = Template.fromStack(stack);
    const c = only(t, 'AWS::ECS::TaskDefinition').Properties.ContainerDefinitions[0];
    expect(c.Secrets.map((x: any) => x.Name).sort()).toEqual(['SCANGATE_REGISTRY_PASSWORD', 'SCANGATE_REGISTRY_USERNAME']);
    expect(c.Environment).toContainEqual({ Name: 'SCANGATE_REGISTRY_HOSTS', Value: 'ghcr.io' });
    const reads = (roleId: string) => roleStatements(t, roleId).some((s) => s.Action.includes('secretsmanager:GetSecretValue'));
    expect(reads(stack.getLogicalId(gate.taskDefinition.executionRole!.node.defaultChild as any))).toBe(true);
    expect(reads(stack.getLogicalId(gate.taskRole.node.defaultChild as any))).toBe(false);
    const stack2 = new Stack(newApp(), 'R2');
    expect(() => new ScanGate(stack2, 'Gate', { imageUri: IMAGE_URI, registryCredentials: new secretsmanager.Secret(stack2, 'S') })).toThrow(/registryHosts/);
  });

  test('egress 443 only, S3 gateway endpoint on the created VPC, allowRepository scopes ECR', () => {
    const stack = new Stack(newApp(), 'N', { env: { account: ACCOUNT, region: REGION } });
    const gate = new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, ecrRepositoryArns: [`arn:aws:ecr:${REGION}:${ACCOUNT}:repository/app`] });
    gate.allowRepository(ecr.Repository.fromRepositoryName(stack, 'Other', 'other'));
    const t = Template.fromStack(stack);
    const sgs = Object.values(t.findResources('AWS::EC2::SecurityGroup')).map((r: any) => r.Properties);
    const worker = sgs.find((p) => /outbound only/.test(p.GroupDescription));
    expect(worker.SecurityGroupEgress).toEqual([expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443, CidrIp: '0.0.0.0/0' })]);
    const ep = only(t, 'AWS::EC2::VPCEndpoint').Properties;
    expect(JSON.stringify(ep.ServiceName)).toContain('.s3');
    const pulls = roleStatements(t, stack.getLogicalId(gate.taskRole.node.defaultChild as any))
      .filter((s) => s.Action.includes('ecr:BatchGetImage'))
      .flatMap((s) => s.Resource.map(flat));
    expect(pulls.some((r) => r.endsWith('repository/other'))).toBe(true);
    expect(pulls.some((r) => r.endsWith('repository/*'))).toBe(false);
  });
});

test('interface endpoints on request, on the created VPC', () => {
  const names = (props: Parameters<typeof synth>[0]) =>
    Object.values(synth(props).template.findResources('AWS::EC2::VPCEndpoint')).map((e: any) => JSON.stringify(e.Properties.ServiceName));
  expect(names({})).toHaveLength(1);
  const all = names({ interfaceEndpoints: true });
  expect(all).toHaveLength(7);
  for (const s of ['ecr.api', 'ecr.dkr', 'logs', 'codepipeline', 'sts', 'inspector-scan']) expect(all.some((n) => n.includes(`.${s}`))).toBe(true);
});

test('jobTimeout is the worker\'s deadline, and StuckJobAlarm waits for it and the result retries', () => {
  const { template } = synth({ jobTimeout: Duration.minutes(20) });
  const c = only(template, 'AWS::ECS::TaskDefinition').Properties.ContainerDefinitions[0];
  expect(c.Environment).toContainEqual({ Name: 'SCANGATE_JOB_TIMEOUT', Value: '1200s' });
  const stuck = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a: any) => a.Properties).find((a) => a.MetricName === 'OldestJobAgeSeconds');
  expect(stuck.Threshold).toBe((20 + 10 + 5) * 60);
});

describe('the contract with the worker (lib/operations.json)', () => {
  const contract = (name: string, dims: string[]) =>
    OPERATIONS.metrics.some((m) => m.name === name && m.dimensions.some((d) => [...d].sort().join() === [...dims].sort().join()));

  test('every ScanGate metric an alarm or the scaling reads is one the worker writes, with those dimensions', () => {
    const { template } = synth();
    const read: Array<[string, string[]]> = [];
    for (const a of Object.values(template.findResources('AWS::CloudWatch::Alarm')) as any[]) {
      if (a.Properties.Namespace === METRICS_NAMESPACE) read.push([a.Properties.MetricName, a.Properties.Dimensions.map((d: any) => d.Name)]);
    }
    for (const p of Object.values(template.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')) as any[]) {
      const spec = p.Properties.TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification;
      for (const m of spec?.Metrics ?? []) {
        if (m.MetricStat) read.push([m.MetricStat.Metric.MetricName, m.MetricStat.Metric.Dimensions.map((d: any) => d.Name)]);
      }
    }
    expect(read.map(([n]) => n)).toEqual(expect.arrayContaining(['Slots', 'PollErrors', 'JobsCompleted', 'OldestJobAgeSeconds', 'SlotsBusy']));
    for (const [name, dims] of read) expect([name, dims, contract(name, dims)]).toEqual([name, dims, true]);
  });

  test('a metric the worker does not write is refused', () => {
    const { gate } = synth();
    expect(() => gate.metric('QueueDepth')).toThrow(/writes no metric QueueDepth/);
    expect(() => gate.metric('Slots', { Result: 'PASS' })).toThrow(/Slots with dimensions \[Service, Result\]/);
    expect(gate.metric('JobsCompleted', { Result: 'FAIL' }).metricName).toBe('JobsCompleted');
  });

  test('the query definitions are the contract\'s queries, over the worker\'s field names', () => {
    const { template } = synth();
    const bodies = Object.values(template.findResources('AWS::Logs::QueryDefinition')).map((q: any) => q.Properties.QueryString as string);
    expect(bodies).toHaveLength(OPERATIONS.queries.length);
    for (const q of OPERATIONS.queries) {
      const fields = q.query.match(/\b(pipeline|result|verdict|image|job_id|failure_type|duration_seconds|event)\b/g) ?? [];
      expect(fields.length).toBeGreaterThan(0);
      const body = bodies.find((b) => fields.every((f) => b.includes(f)));
      expect([q.name, body]).toEqual([q.name, expect.any(String)]);
    }
    // the guessed names of before are gone: the worker writes no such field
    for (const b of bodies) expect(b).not.toMatch(/\bfields\.|\bspan\./);
  });
});
