import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { parseEcrImageUri, ScanGate } from '../lib/scangate';
import { ACCOUNT, IMAGE_IN_TEMPLATE, IMAGE_URI, flat, newApp, only, REGION, roleStatements, synth } from './helpers';

/**
 * DESIGN.md, "The custom action type": kept in sync by hand on purpose, so
 * a change to the construct's list that the contract does not make fails
 * here.
 */
const DESIGN_PROPERTIES: Array<[name: string, type: string]> = [
  ['ImageUrl', 'String'],
  ['CriticalThreshold', 'Number'],
  ['HighThreshold', 'Number'],
  ['MediumThreshold', 'Number'],
  ['LowThreshold', 'Number'],
  ['FixableOnly', 'Boolean'],
  ['PolicyFile', 'String'],
  ['Platform', 'String'],
  ['Engine', 'String'],
];

/** Actions IAM cannot scope to a resource (Service Authorization Reference). */
const UNSCOPABLE = new Set([
  'codepipeline:AcknowledgeJob',
  'codepipeline:GetJobDetails',
  'codepipeline:PutJobSuccessResult',
  'codepipeline:PutJobFailureResult',
  'inspector-scan:ScanSbom',
  'ecr:GetAuthorizationToken',
  'inspector2:ListFindings',
]);

// a concrete region lets CDK write the partition literally
const PARTITION = 'aws';

function env(template: Template): Record<string, string> {
  const td = only(template, 'AWS::ECS::TaskDefinition').Properties;
  expect(td.ContainerDefinitions).toHaveLength(1);
  return Object.fromEntries((td.ContainerDefinitions[0].Environment as any[]).map((e) => [e.Name, flat(e.Value)]));
}

describe('custom action type', () => {
  test('has exactly the DESIGN.md properties, none required, secret, queryable or key', () => {
    const { template } = synth();
    const at = only(template, 'AWS::CodePipeline::CustomActionType').Properties;
    expect(at.ConfigurationProperties.map((p: any) => [p.Name, p.Type])).toEqual(DESIGN_PROPERTIES);
    expect(at.ConfigurationProperties.length).toBeLessThanOrEqual(10);
    for (const p of at.ConfigurationProperties) {
      expect({ name: p.Name, key: p.Key, required: p.Required, secret: p.Secret, queryable: p.Queryable }).toEqual({
        name: p.Name,
        key: false,
        required: false,
        secret: false,
        queryable: false,
      });
      // CloudFormation's limits on a property description
      expect(p.Description.length).toBeGreaterThan(0);
      expect(p.Description.length).toBeLessThanOrEqual(160);
    }
  });

  test('coordinates, artifact counts and report links', () => {
    const { template } = synth();
    const at = only(template, 'AWS::CodePipeline::CustomActionType').Properties;
    expect([at.Category, at.Provider, at.Version]).toEqual(['Test', 'ScanGate', '1']);
    expect(at.InputArtifactDetails).toEqual({ MinimumCount: 0, MaximumCount: 1 });
    expect(at.OutputArtifactDetails).toEqual({ MinimumCount: 0, MaximumCount: 1 });
    const bucket = `scangate-${ACCOUNT}-${REGION}-scangate`;
    expect(flat(at.Settings.ExecutionUrlTemplate)).toBe(
      `https://s3.console.aws.amazon.com/s3/object/${bucket}?region=${REGION}&prefix=jobs/{ExternalExecutionId}/report.html`,
    );
    expect(flat(at.Settings.EntityUrlTemplate)).toBe(
      `https://s3.console.aws.amazon.com/s3/buckets/${bucket}?region=${REGION}&prefix=jobs/`,
    );
  });

  test('provider, category, version and reports prefix are configurable', () => {
    const { template } = synth({ provider: 'TeamGate', category: 'Build', actionVersion: '3', reportsPrefix: '/scangate/prod/' });
    const at = only(template, 'AWS::CodePipeline::CustomActionType').Properties;
    expect([at.Category, at.Provider, at.Version]).toEqual(['Build', 'TeamGate', '3']);
    expect(flat(at.Settings.ExecutionUrlTemplate)).toMatch(/&prefix=scangate\/prod\/jobs\/\{ExternalExecutionId\}\/report\.html$/);
    const e = env(template);
    expect([e.SCANGATE_PROVIDER, e.SCANGATE_CATEGORY, e.SCANGATE_ACTION_VERSION]).toEqual(['TeamGate', 'Build', '3']);
    expect(e.SCANGATE_REPORTS).toBe(`s3://scangate-${ACCOUNT}-${REGION}-teamgate/scangate/prod/`);
  });
});

describe('reports bucket', () => {
  test('private, SSL only, S3-managed encryption, expiring, retained', () => {
    const { template } = synth();
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: Match.objectLike({
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        BucketEncryption: { ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }] },
        LifecycleConfiguration: { Rules: [Match.objectLike({ ExpirationInDays: 400, Status: 'Enabled' })] },
      }),
    });
    const props = only(template, 'AWS::S3::Bucket').Properties;
    expect(props.VersioningConfiguration).toBeUndefined();

    const policy = only(template, 'AWS::S3::BucketPolicy').Properties.PolicyDocument.Statement as any[];
    const denyPlainHttp = policy.find((s) => s.Effect === 'Deny' && s.Condition?.Bool?.['aws:SecureTransport'] === 'false');
    expect(denyPlainHttp).toBeDefined();
    expect(denyPlainHttp.Action).toBe('s3:*');
    expect(denyPlainHttp.Principal).toEqual({ AWS: '*' });
  });

  test('KMS key, versioning and expiry options', () => {
    const stack = new Stack(newApp(), 'Kms', { env: { account: ACCOUNT, region: REGION } });
    const key = new kms.Key(stack, 'Key');
    new ScanGate(stack, 'Gate', {
      imageUri: IMAGE_URI,
      reportsEncryptionKey: key,
      reportsVersioned: true,
      reportsExpiration: Duration.days(90),
    });
    const template = Template.fromStack(stack);
    const bucket = only(template, 'AWS::S3::Bucket').Properties;
    const keyId = only(template, 'AWS::KMS::Key').logicalId;
    expect(bucket.BucketEncryption.ServerSideEncryptionConfiguration[0]).toEqual({
      BucketKeyEnabled: true,
      ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [keyId, 'Arn'] } },
    });
    expect(env(template).SCANGATE_REPORTS_KMS_KEY).toBe(`\${${keyId}.Arn}`);
    expect(bucket.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.LifecycleConfiguration.Rules[0]).toMatchObject({ ExpirationInDays: 90, NoncurrentVersionExpiration: { NoncurrentDays: 30 } });

    const gate = stack.node.findChild('Gate') as ScanGate;
    const role = stack.getLogicalId(gate.taskRole.node.defaultChild as any);
    const kmsStatements = roleStatements(template, role).filter((s) => s.Action.some((a) => a.startsWith('kms:')));
    expect(kmsStatements).toEqual([
      expect.objectContaining({ Action: ['kms:Decrypt', 'kms:GenerateDataKey'], Resource: [`\${${keyId}.Arn}`] }),
    ]);
  });
});

describe('task role', () => {
  function statements(props = {}) {
    const { template, gate, stack } = synth(props);
    const role = stack.getLogicalId(gate.taskRole.node.defaultChild as any);
    return { template, list: roleStatements(template, role) };
  }

  test('least privilege: "*" only for actions IAM cannot scope', () => {
    const { list, template } = statements();
    for (const s of list) expect(s.Effect).toBe('Allow');
    for (const s of list.filter((s) => s.Resource.includes('*'))) {
      for (const a of s.Action) expect(UNSCOPABLE.has(a) ? a : `${a} on "*"`).toBe(a);
    }
    // no wildcard actions either
    for (const s of list) for (const a of s.Action) expect(a).not.toMatch(/\*/);

    const byAction = (a: string) => list.filter((s) => s.Action.includes(a)).flatMap((s) => s.Resource);
    expect(byAction('codepipeline:PollForJobs')).toEqual([
      `arn:${PARTITION}:codepipeline:${REGION}:${ACCOUNT}:actiontype:Custom/Test/ScanGate/1`,
    ]);
    for (const a of UNSCOPABLE) expect(byAction(a)).toEqual(['*']);
    const ecrRepos = [`arn:${PARTITION}:ecr:${REGION}:${ACCOUNT}:repository/*`];
    expect(byAction('ecr:BatchGetImage')).toEqual(ecrRepos);
    expect(byAction('ecr:GetDownloadUrlForLayer')).toEqual(ecrRepos);
    expect(byAction('ecr:StartImageScan')).toEqual(ecrRepos);
    expect(byAction('ecr:DescribeImageScanFindings')).toEqual(ecrRepos);

    const bucket = only(template, 'AWS::S3::Bucket').logicalId;
    expect(byAction('s3:PutObject')).toEqual([`\${${bucket}.Arn}/*`]);
    expect(byAction('s3:GetObject')).toEqual([`\${${bucket}.Arn}/*`]);
    expect(byAction('s3:ListBucket')).toEqual([`\${${bucket}.Arn}`]);
    // the job's own artifact credentials reach the artifact buckets
    expect(list.flatMap((s) => s.Action).filter((a) => a.startsWith('s3:')).sort()).toEqual([
      's3:GetObject',
      's3:ListBucket',
      's3:PutObject',
    ]);
    expect(list.some((s) => s.Action.some((a) => a.startsWith('kms:')))).toBe(false);
  });

  test('ECR pulls scoped to given repositories; reports scoped to the prefix', () => {
    const repos = [`arn:aws:ecr:${REGION}:${ACCOUNT}:repository/app`, `arn:aws:ecr:${REGION}:210987654321:repository/base`];
    const { list, template } = statements({ ecrRepositoryArns: repos, reportsPrefix: 'gate' });
    const ecr = list.find((s) => s.Action.includes('ecr:BatchGetImage'))!;
    expect(ecr.Resource).toEqual(repos);
    const bucket = only(template, 'AWS::S3::Bucket').logicalId;
    expect(list.find((s) => s.Action.includes('s3:PutObject'))!.Resource).toEqual([`\${${bucket}.Arn}/gate/*`]);
    expect(list.find((s) => s.Action.includes('s3:ListBucket'))!.Condition).toEqual({ StringLike: { 's3:prefix': ['gate/*'] } });
  });

  test('PollForJobs follows the configured action type', () => {
    const { list } = statements({ provider: 'Other', category: 'Deploy', actionVersion: '7' });
    expect(list.find((s) => s.Action.includes('codepipeline:PollForJobs'))!.Resource).toEqual([
      `arn:${PARTITION}:codepipeline:${REGION}:${ACCOUNT}:actiontype:Custom/Deploy/Other/7`,
    ]);
  });
});

describe('worker service', () => {
  test('environment per DESIGN.md', () => {
    const { template } = synth({ concurrency: 4 });
    expect(env(template)).toEqual({
      SCANGATE_PROVIDER: 'ScanGate',
      SCANGATE_CATEGORY: 'Test',
      SCANGATE_ACTION_VERSION: '1',
      SCANGATE_CONCURRENCY: '4',
      SCANGATE_REPORTS: `s3://scangate-${ACCOUNT}-${REGION}-scangate/`,
      SCANGATE_HEALTH_ADDR: '0.0.0.0:8080',
      SCANGATE_SHUTDOWN_GRACE: '100s',
      SCANGATE_JOB_TIMEOUT: '2700s',
      SCANGATE_LOG_FORMAT: 'json',
      SCANGATE_METRICS_SERVICE: 'ScanGate',
    });
  });

  test('extra environment cannot override the contract variables', () => {
    const { template } = synth({ environment: { SCANGATE_POLL_INTERVAL: '5s', SCANGATE_PROVIDER: 'Nope' } });
    const e = env(template);
    expect(e.SCANGATE_POLL_INTERVAL).toBe('5s');
    expect(e.SCANGATE_PROVIDER).toBe('ScanGate');
  });

  test('task size, image, stop timeout, health check, logs', () => {
    const { template } = synth();
    const td = only(template, 'AWS::ECS::TaskDefinition').Properties;
    // Two jobs fit: 512 MiB each and the process (issue 9, defect 10).
    expect([td.Cpu, td.Memory]).toEqual(['512', '2048']);
    expect(td.RequiresCompatibilities).toEqual(['FARGATE']);
    const c = td.ContainerDefinitions[0];
    expect(flat(c.Image)).toBe(IMAGE_IN_TEMPLATE);
    expect(c.Command).toEqual(['worker']);
    // covers SCANGATE_SHUTDOWN_GRACE (100 s) and is Fargate's maximum
    expect(c.StopTimeout).toBe(120);
    expect(c.ReadonlyRootFilesystem).toBe(true);
    // exec form: the distroless image has no shell
    expect(c.HealthCheck.Command).toEqual(['CMD', '/usr/local/bin/scangate', 'healthcheck']);

    const lg = only(template, 'AWS::Logs::LogGroup');
    expect(lg.Properties.RetentionInDays).toBe(90);
    expect(c.LogConfiguration.LogDriver).toBe('awslogs');
    expect(c.LogConfiguration.Options['awslogs-group']).toEqual({ Ref: lg.logicalId });
    expect(c.LogConfiguration.Options.mode).toBe('non-blocking');
  });

  test('sizes, grace and retention are configurable; the health check can be switched off', () => {
    const { template } = synth({
      cpu: 1024,
      memoryLimitMiB: 2048,
      shutdownGrace: Duration.seconds(60),
      logRetention: logs.RetentionDays.ONE_YEAR,
      healthPort: 9090,
      containerHealthCheck: false,
    });
    const td = only(template, 'AWS::ECS::TaskDefinition').Properties;
    expect([td.Cpu, td.Memory]).toEqual(['1024', '2048']);
    const c = td.ContainerDefinitions[0];
    expect(c.StopTimeout).toBe(80);
    expect(c.HealthCheck).toBeUndefined();
    expect(env(template).SCANGATE_SHUTDOWN_GRACE).toBe('60s');
    expect(env(template).SCANGATE_HEALTH_ADDR).toBe('0.0.0.0:9090');
    expect(only(template, 'AWS::Logs::LogGroup').Properties.RetentionInDays).toBe(365);
  });

  test('a grace that does not fit Fargate\'s 120 s stop timeout is rejected', () => {
    expect(() => synth({ shutdownGrace: Duration.seconds(101) })).toThrow(/exceeds Fargate's 120 s stop timeout/);
  });

  test('bad worker bounds and concurrency are rejected', () => {
    expect(() => synth({ minWorkers: 5, maxWorkers: 2 })).toThrow(/minWorkers <= maxWorkers/);
    expect(() => synth({ concurrency: 0 })).toThrow(/concurrency/);
    expect(() => synth({ concurrency: 65 })).toThrow(/concurrency/);
    expect(() => synth({ memoryLimitMiB: 1024, concurrency: 4 })).toThrow(/too small for 4 concurrent jobs/);
    expect(() => synth({ memoryLimitMiB: 1024, concurrency: 2 })).not.toThrow();
    expect(() => synth({ reportsPrefix: 'a?b' })).toThrow(/report URLs/);
  });

  test('private subnets, no public IP, no inbound rule, rolling deploys without a gap', () => {
    const { template } = synth();
    const svc = only(template, 'AWS::ECS::Service').Properties;
    expect(svc.LaunchType).toBe('FARGATE');
    expect(svc.NetworkConfiguration.AwsvpcConfiguration.AssignPublicIp).toBe('DISABLED');
    expect(svc.DeploymentConfiguration).toMatchObject({ MinimumHealthyPercent: 100, MaximumPercent: 200 });
    const subnets = (svc.NetworkConfiguration.AwsvpcConfiguration.Subnets as any[]).map((s) => s.Ref);
    const all = template.findResources('AWS::EC2::Subnet');
    for (const id of subnets) expect(all[id].Properties.MapPublicIpOnLaunch).toBe(false);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    const sg = only(template, 'AWS::EC2::SecurityGroup').Properties;
    expect(sg.SecurityGroupIngress).toBeUndefined();
  });

  test('an existing VPC is used as given', () => {
    const stack = new Stack(newApp(), 'Vpc', { env: { account: ACCOUNT, region: REGION } });
    const vpc = new ec2.Vpc(stack, 'Shared', { maxAzs: 3, natGateways: 0, subnetConfiguration: [{ name: 'iso', subnetType: ec2.SubnetType.PRIVATE_ISOLATED }] });
    new ScanGate(stack, 'Gate', { imageUri: IMAGE_URI, vpc, vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_ISOLATED } });
    const template = Template.fromStack(stack);
    template.resourceCountIs('AWS::EC2::VPC', 1);
    const svc = only(template, 'AWS::ECS::Service').Properties;
    expect(svc.NetworkConfiguration.AwsvpcConfiguration.Subnets).toHaveLength(3);
    template.resourceCountIs('AWS::ECS::Cluster', 1);
  });

  test('auto-scaling: bounds and CPU target tracking', () => {
    const { template } = synth({ minWorkers: 2, maxWorkers: 10, targetCpuUtilization: 50 });
    const target = only(template, 'AWS::ApplicationAutoScaling::ScalableTarget').Properties;
    expect([target.MinCapacity, target.MaxCapacity]).toEqual([2, 10]);
    expect(target.ScalableDimension).toBe('ecs:service:DesiredCount');
    const policy = cpuPolicy(template);
    expect(policy.PolicyType).toBe('TargetTrackingScaling');
    expect(policy.TargetTrackingScalingPolicyConfiguration).toMatchObject({
      TargetValue: 50,
      PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
      ScaleInCooldown: 600,
      ScaleOutCooldown: 60,
    });
    // unset desired count: a deploy keeps the count auto-scaling chose
    expect(only(template, 'AWS::ECS::Service').Properties.DesiredCount).toBeUndefined();
  });

  test('defaults: 1..4 workers; scale-in can be disabled', () => {
    const { template } = synth({ scaleIn: false });
    const target = only(template, 'AWS::ApplicationAutoScaling::ScalableTarget').Properties;
    expect([target.MinCapacity, target.MaxCapacity]).toEqual([1, 4]);
    for (const p of Object.values(template.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')) as any[]) {
      expect(p.Properties.TargetTrackingScalingPolicyConfiguration.DisableScaleIn).toBe(true);
    }
  });
});

describe('worker image', () => {
  function executionRoleStatements(imageUri: string) {
    const { template, gate, stack } = synth({ imageUri });
    const role = stack.getLogicalId(gate.taskDefinition.executionRole!.node.defaultChild as any);
    const image = only(template, 'AWS::ECS::TaskDefinition').Properties.ContainerDefinitions[0].Image;
    return { image: flat(image), list: roleStatements(template, role) };
  }

  test('a private ECR image gives the execution role pull rights on exactly that repository', () => {
    const digest = 'sha256:' + 'ab'.repeat(32);
    const { image, list } = executionRoleStatements(`210987654321.dkr.ecr.us-east-1.amazonaws.com/team/scangate@${digest}`);
    expect(image).toBe(`210987654321.dkr.ecr.us-east-1.\${AWS::URLSuffix}/team/scangate@${digest}`);
    const pull = list.find((s) => s.Action.includes('ecr:BatchGetImage'))!;
    expect(pull.Resource).toEqual(['arn:aws:ecr:us-east-1:210987654321:repository/team/scangate']);
    expect(list.find((s) => s.Action.includes('ecr:GetAuthorizationToken'))!.Resource).toEqual(['*']);
  });

  test('another registry is used as given, with no ECR rights', () => {
    const { image, list } = executionRoleStatements('ghcr.io/acme/scangate:1.2.0');
    expect(image).toBe('ghcr.io/acme/scangate:1.2.0');
    expect(list.flatMap((s) => s.Action).filter((a) => a.startsWith('ecr:'))).toEqual([]);
  });

  test.each([
    ['123456789012.dkr.ecr.eu-west-1.amazonaws.com/scangate', 'arn:aws:ecr:eu-west-1:123456789012:repository/scangate', 'latest'],
    ['123456789012.dkr.ecr.eu-west-1.amazonaws.com/a/b:v1.2', 'arn:aws:ecr:eu-west-1:123456789012:repository/a/b', 'v1.2'],
    ['123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/s:1', 'arn:aws-cn:ecr:cn-north-1:123456789012:repository/s', '1'],
    ['123456789012.dkr.ecr.us-gov-west-1.amazonaws.com/s:1', 'arn:aws-us-gov:ecr:us-gov-west-1:123456789012:repository/s', '1'],
  ])('parseEcrImageUri(%s)', (uri, repositoryArn, tagOrDigest) => {
    expect(parseEcrImageUri(uri)).toEqual({ repositoryArn, tagOrDigest });
  });

  test.each(['public.ecr.aws/acme/scangate:1', 'debian:bookworm', 'localhost:5000/scangate:1', '12345.dkr.ecr.eu-west-1.amazonaws.com/x:1'])(
    'parseEcrImageUri(%s) is not a private ECR image',
    (uri) => {
      expect(parseEcrImageUri(uri)).toBeUndefined();
    },
  );
});

function cpuPolicy(template: Template): any {
  const all = Object.values(template.findResources('AWS::ApplicationAutoScaling::ScalingPolicy')) as any[];
  return all.find((p) => p.Properties.TargetTrackingScalingPolicyConfiguration.PredefinedMetricSpecification).Properties;
}
