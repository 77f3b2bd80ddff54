import * as fs from 'fs';
import * as path from 'path';
import { ArnFormat, CfnOutput, Duration, RemovalPolicy, Size, Stack, Token } from 'aws-cdk-lib';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as events from 'aws-cdk-lib/aws-events';
import * as eventsTargets from 'aws-cdk-lib/aws-events-targets';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Construct } from 'constructs';

/**
 * The categories a *custom* action type may use. The API's ActionCategory
 * enum also lists Invoke, Approval and Compute, but those are for AWS-owned
 * actions only: CreateCustomActionType accepts Source, Build, Deploy and
 * Test (CodePipeline user guide, "Create and add a custom action").
 */
export const ACTION_CATEGORIES = ['Source', 'Build', 'Deploy', 'Test'] as const;
export type ActionCategory = (typeof ACTION_CATEGORIES)[number];

/**
 * The custom action type's configuration properties: DESIGN.md, "The custom
 * action type". None is required (ImageUrl falls back to the input
 * artifact, the thresholds have defaults) and none is queryable: CodePipeline
 * only accepts a queryable property that is also required, and the worker
 * polls for every job of its action type.
 */
export const ACTION_PROPERTIES: ReadonlyArray<{ name: string; type: 'String' | 'Number' | 'Boolean'; description: string }> = [
  {
    name: 'ImageUrl',
    type: 'String',
    description: 'Image to scan, usually #{BuildVariables.IMAGE_URL}. Default: imageDetail.json or imagedefinitions.json in the input artifact',
  },
  { name: 'CriticalThreshold', type: 'Number', description: 'CRITICAL findings allowed; the gate fails when there are more. Default 0' },
  { name: 'HighThreshold', type: 'Number', description: 'HIGH findings allowed; the gate fails when there are more. Default 0' },
  { name: 'MediumThreshold', type: 'Number', description: 'MEDIUM findings allowed; the gate fails when there are more. Default unlimited' },
  { name: 'LowThreshold', type: 'Number', description: 'LOW findings allowed; the gate fails when there are more. Default unlimited' },
  { name: 'FixableOnly', type: 'Boolean', description: 'Thresholds count only findings that have a fixed version. Default false' },
  { name: 'PolicyFile', type: 'String', description: 'Path of a policy file (YAML or JSON) inside the input artifact; the properties above override it' },
  { name: 'Platform', type: 'String', description: 'Which image of a multi-platform index to scan. Default linux/amd64' },
  {
    name: 'Engine',
    type: 'String',
    description: 'inspector (native SBOM + Inspector ScanSbom, the default), ecr-basic or ecr-enhanced',
  },
];

/** The scan engines the action type offers (its Engine property). */
export const ENGINES = ['inspector', 'ecr-basic', 'ecr-enhanced'] as const;
export type Engine = (typeof ENGINES)[number];

/**
 * The contract with the worker (DESIGN.md, Operations): the EMF metrics it
 * writes, with their dimension sets, and the Logs Insights queries over its
 * job lines. integration-tests/tests/worker_ops.rs runs the real worker and
 * checks its output against this same file.
 */
export interface Operations {
  readonly namespace: string;
  readonly metrics: ReadonlyArray<{ name: string; unit: string; dimensions: string[][] }>;
  readonly queries: ReadonlyArray<{ name: string; query: string }>;
}
export const OPERATIONS: Operations = JSON.parse(fs.readFileSync(path.join(__dirname, 'operations.json'), 'utf8'));
/** CloudWatch namespace of the worker's EMF lines. */
export const METRICS_NAMESPACE = OPERATIONS.namespace;

/** Throws unless the worker writes `name` with exactly these dimensions. */
export function checkWorkerMetric(name: string, dimensions: string[]): void {
  const m = OPERATIONS.metrics.find((x) => x.name === name);
  const key = [...dimensions].sort().join(',');
  if (!m || !m.dimensions.some((d) => [...d].sort().join(',') === key)) {
    throw new Error(`ScanGate: the worker writes no metric ${name} with dimensions [${dimensions.join(', ')}] (lib/operations.json)`);
  }
}
/** Failure types a job can end in (DESIGN.md, failure table); each gets an alarm. */
export const FAILURE_TYPES = ['JobFailed', 'ConfigurationError', 'PermissionError', 'SystemUnavailable'] as const;

/** Fargate allows at most 120 s between SIGTERM and SIGKILL. */
const MAX_STOP_TIMEOUT = Duration.seconds(120);
/** Default task memory: two jobs of up to 512 MiB each, and the process. */
export const DEFAULT_MEMORY_MIB = 2048;
/** What one job may need: 192 MiB kept + 2 x 64 MiB sniffed (the worker's
 * pull limits) and the SBOM, findings and reports built from them. */
export const MIN_MEMORY_MIB_PER_JOB = 512;
/** The worker's default SCANGATE_RESULT_RETRY. */
const RESULT_RETRY = Duration.minutes(10);

function jobTimeout(props: ScanGateProps): Duration {
  return props.jobTimeout ?? Duration.minutes(45);
}

/** Room between the worker's own grace period and SIGKILL to send the last results. */
const STOP_MARGIN = Duration.seconds(20);

export interface ScanGateProps {
  /** Custom action type provider; the owner is always `Custom`. @default 'ScanGate' */
  readonly provider?: string;
  /** Action category. @default 'Test' */
  readonly category?: ActionCategory;
  /**
   * Action type version. A custom action type cannot be changed in place:
   * bump this when the properties or the URL templates change.
   * @default '1'
   */
  readonly actionVersion?: string;

  /**
   * The worker image. Give either this or `imageUri`; with neither, the
   * image is built from the repository's Dockerfile at deploy time (needs
   * Docker where `cdk deploy` runs).
   */
  readonly image?: ecs.ContainerImage;
  /** A pushed worker image, e.g. `123456789012.dkr.ecr.eu-west-1.amazonaws.com/scangate:1.2.0`. */
  readonly imageUri?: string;
  /**
   * The container health check runs `scangate healthcheck` (exec form, no
   * shell: the image is distroless). Turn it off for an image without that
   * subcommand.
   * @default true
   */
  readonly containerHealthCheck?: boolean;

  /** The VPC for the workers. @default a new VPC: 2 AZs, public subnets and private subnets with one NAT gateway */
  readonly vpc?: ec2.IVpc;
  /** Where the tasks run; they need outbound HTTPS (registries, AWS APIs). @default private subnets with egress */
  readonly vpcSubnets?: ec2.SubnetSelection;
  /** An existing cluster (must be in `vpc`). @default a new cluster */
  readonly cluster?: ecs.ICluster;

  /** Task CPU units. The worker streams layers and needs little CPU. @default 512 (0.5 vCPU) */
  readonly cpu?: number;
  /**
   * Task memory in MiB: at least 512 per concurrent job (the worker's
   * per-job pull limits plus what the SBOM and reports take), plus the
   * process itself. The worker derives its process-wide byte budget from
   * this limit (SCANGATE_MEMORY_BUDGET, half of it by default).
   * @default 2048
   */
  readonly memoryLimitMiB?: number;
  /** Jobs one worker processes at once (SCANGATE_CONCURRENCY). @default 2 */
  readonly concurrency?: number;
  /**
   * How long a stopping worker may finish in-flight jobs
   * (SCANGATE_SHUTDOWN_GRACE). The container's stop timeout is this plus
   * 20 s, and Fargate caps that at 120 s.
   * @default 100 seconds
   */
  readonly shutdownGrace?: Duration;
  /** Port of /healthz, /metrics and /jobs (SCANGATE_HEALTH_ADDR is 0.0.0.0:PORT). @default 8080 */
  readonly healthPort?: number;
  /** More worker environment (e.g. SCANGATE_POLL_INTERVAL, RUST_LOG). Overrides nothing set here. */
  readonly environment?: Record<string, string>;

  /** Fewest workers. @default 1 */
  readonly minWorkers?: number;
  /** Most workers. @default 4 */
  readonly maxWorkers?: number;
  /**
   * Tasks at creation. Left unset, CloudFormation keeps the running count on
   * updates so a deploy does not undo auto-scaling.
   * @default undefined (1 at creation, then auto-scaling's choice)
   */
  readonly desiredCount?: number;
  /** Average CPU the target-tracking policy aims for. @default 60 */
  readonly targetCpuUtilization?: number;
  /**
   * Let auto-scaling remove workers. A worker removed by scale-in gets
   * SIGTERM and fails the jobs it cannot finish within `shutdownGrace`.
   * @default true
   */
  readonly scaleIn?: boolean;

  /** Key prefix of the reports inside the bucket (no leading slash). @default '' */
  readonly reportsPrefix?: string;
  /** Delete reports after this long. @default 400 days */
  readonly reportsExpiration?: Duration;
  /** Keep old object versions (deleted after 30 days). @default false */
  readonly reportsVersioned?: boolean;
  /**
   * Base of the S3 console links in the action's URL templates.
   * @default 'https://s3.console.aws.amazon.com/s3' (the `aws` partition)
   */
  readonly reportsConsoleUrl?: string;
  /** Encrypt the reports bucket with this KMS key. @default S3-managed keys (SSE-S3) */
  readonly reportsEncryptionKey?: kms.IKey;
  /**
   * Name of the reports bucket. The action type's URL templates embed it,
   * and a deleted custom action type can only be re-created with identical
   * settings, so it must not be a CloudFormation-generated name.
   * @default `scangate-ACCOUNT-REGION-PROVIDER` (lower-cased, at most 63 characters)
   */
  readonly reportsBucketName?: string;
  /**
   * Use this existing bucket for the reports instead of creating one (for
   * example the retained bucket of a destroyed or rolled-back stack).
   * Its lifecycle, encryption and versioning are left as they are.
   */
  readonly existingReportsBucket?: s3.IBucket;
  /**
   * Engines the workers may run; the task role gets each one's rights only.
   * A job asking for another engine fails with PermissionError.
   * @default all three: the action type offers them all
   */
  readonly engines?: Engine[];
  /**
   * Registry login for non-ECR registries: a Secrets Manager secret with
   * JSON keys `username` and `password`, given to the container as
   * SCANGATE_REGISTRY_USERNAME/_PASSWORD (read by the execution role only).
   * `registryHosts` must come with it: the worker offers it only there.
   */
  readonly registryCredentials?: secretsmanager.ISecret;
  /** SCANGATE_REGISTRY_HOSTS: the hosts the credentials are offered to. */
  readonly registryHosts?: string[];
  /**
   * Let the workers reach any port outbound. Registries and AWS APIs are
   * HTTPS, so only 443 is open by default.
   * @default false
   */
  readonly allowAllOutbound?: boolean;
  /**
   * Interface endpoints on the created VPC (ecr.api, ecr.dkr, logs,
   * codepipeline, sts, inspector-scan), so AWS API calls skip the NAT
   * gateway. Each costs an hourly fee per AZ.
   * @default false (the S3 gateway endpoint is always added)
   */
  readonly interfaceEndpoints?: boolean;
  /** Alarms notify this topic. @default alarms without actions */
  readonly alarmTopic?: sns.ITopic;
  /** Alarm when no worker has polled successfully for this long. @default 10 minutes */
  readonly pollAlarmPeriod?: Duration;
  /**
   * The job deadline (SCANGATE_JOB_TIMEOUT): a scan still running after it
   * fails with SystemUnavailable. Keep it above the ecr-basic engine's
   * 30-minute wait for ECR's scan. `StuckJobAlarm` fires when a job is older
   * than this plus the worker's 10-minute result retry plus 5 minutes: the
   * deadline did not free the slot.
   * @default 45 minutes
   */
  readonly jobTimeout?: Duration;
  /** Target of slot utilisation (SlotsBusy/Slots, percent). @default 70 */
  readonly targetSlotUtilization?: number;

  /**
   * ECR repositories the worker may pull from (cross-account ones too, if
   * their repository policy allows this account).
   * @default every repository of this account and region
   */
  readonly ecrRepositoryArns?: string[];

  /** @default three months */
  readonly logRetention?: logs.RetentionDays;
}

/**
 * scangate as a CodePipeline custom action: the action type, the reports
 * bucket and an auto-scaled ECS Fargate service of workers that poll
 * CodePipeline for the action type's jobs. CodePipeline queues the jobs and
 * hands each to one poller, so more workers means more throughput and no
 * coordination between them is needed.
 */
export class ScanGate extends Construct {
  public readonly actionType: codepipeline.CfnCustomActionType;
  public readonly provider: string;
  public readonly category: ActionCategory;
  public readonly actionVersion: string;
  public readonly reportsBucket: s3.IBucket;
  public readonly engines: readonly Engine[];
  public readonly alarms: cloudwatch.Alarm[] = [];
  /** CodePipeline action executions of this provider that FAILED; add targets to it. */
  public actionFailedRule!: events.Rule;
  /** `s3://bucket/prefix`, the worker's SCANGATE_REPORTS */
  public readonly reportsUri: string;
  public readonly cluster: ecs.ICluster;
  public readonly service: ecs.FargateService;
  public readonly taskDefinition: ecs.FargateTaskDefinition;
  public readonly container: ecs.ContainerDefinition;
  public readonly logGroup: logs.LogGroup;
  public readonly taskRole: iam.Role;

  constructor(scope: Construct, id: string, props: ScanGateProps = {}) {
    super(scope, id);

    this.provider = props.provider ?? 'ScanGate';
    this.category = props.category ?? 'Test';
    this.actionVersion = props.actionVersion ?? '1';
    validate(props, this.category);

    this.engines = props.engines ?? [...ENGINES];
    const prefix = normalizePrefix(props.reportsPrefix ?? '');
    const shutdownGrace = props.shutdownGrace ?? Duration.seconds(100);
    const healthPort = props.healthPort ?? 8080;

    // Reports: job records, SBOMs, findings, rendered reports.
    // The name as text, not a reference to the bucket resource: the URL
    // templates below must come out identical on every deploy.
    const bucketName = props.existingReportsBucket?.bucketName ?? props.reportsBucketName ?? defaultBucketName(Stack.of(this), this.provider);
    this.reportsBucket = props.existingReportsBucket ?? new s3.Bucket(this, 'Reports', {
      bucketName,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      encryption: props.reportsEncryptionKey ? s3.BucketEncryption.KMS : s3.BucketEncryption.S3_MANAGED,
      encryptionKey: props.reportsEncryptionKey,
      // one data key per bucket instead of one KMS call per object
      bucketKeyEnabled: props.reportsEncryptionKey ? true : undefined,
      versioned: props.reportsVersioned ?? false,
      lifecycleRules: [
        {
          id: 'expire-reports',
          expiration: props.reportsExpiration ?? Duration.days(400),
          noncurrentVersionExpiration: props.reportsVersioned ? Duration.days(30) : undefined,
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      // audit trail of past gate decisions: never deleted with the stack
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.reportsUri = `s3://${bucketName}/${prefix}`;

    // The action type. {ExternalExecutionId} is the job id (the worker sets
    // it so), which is also the directory of the job's reports.
    // S3 console links of the `aws` partition; see reportsConsoleUrl for others.
    const s3Console = props.reportsConsoleUrl ?? 'https://s3.console.aws.amazon.com/s3';
    this.actionType = new codepipeline.CfnCustomActionType(this, 'ActionType', {
      category: this.category,
      provider: this.provider,
      version: this.actionVersion,
      configurationProperties: ACTION_PROPERTIES.map((p) => ({
        name: p.name,
        type: p.type,
        description: p.description,
        key: false,
        required: false,
        secret: false,
        queryable: false,
      })),
      inputArtifactDetails: { minimumCount: 0, maximumCount: 1 },
      outputArtifactDetails: { minimumCount: 0, maximumCount: 1 },
      settings: {
        entityUrlTemplate: `${s3Console}/buckets/${bucketName}?region=${Stack.of(this).region}&prefix=${prefix}jobs/`,
        executionUrlTemplate: `${s3Console}/object/${bucketName}?region=${Stack.of(this).region}&prefix=${prefix}jobs/{ExternalExecutionId}/report.html`,
      },
    });

    // Network and cluster.
    const vpc =
      props.vpc ??
      props.cluster?.vpc ??
      new ec2.Vpc(this, 'Vpc', {
        maxAzs: 2,
        natGateways: 1,
        subnetConfiguration: [
          { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 24 },
          { name: 'workers', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 22 },
        ],
        // image layers from ECR and the reports come from S3: keep them off the NAT gateway
        gatewayEndpoints: { S3: { service: ec2.GatewayVpcEndpointAwsService.S3 } },
      });
    if (props.interfaceEndpoints && vpc instanceof ec2.Vpc && vpc.node.scope === this) {
      const services: Array<[string, ec2.InterfaceVpcEndpointAwsService]> = [
        ['EcrApi', ec2.InterfaceVpcEndpointAwsService.ECR],
        ['EcrDocker', ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER],
        ['Logs', ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS],
        ['CodePipeline', ec2.InterfaceVpcEndpointAwsService.CODEPIPELINE],
        ['Sts', ec2.InterfaceVpcEndpointAwsService.STS],
        // not offered in every region: check before enabling there
        ['InspectorScan', new ec2.InterfaceVpcEndpointAwsService('inspector-scan')],
      ];
      for (const [id, service] of services) vpc.addInterfaceEndpoint(id, { service, privateDnsEnabled: true });
    }
    this.cluster =
      props.cluster ?? new ecs.Cluster(this, 'Cluster', { vpc, containerInsightsV2: ecs.ContainerInsights.ENABLED });

    // Least-privilege task role (README.md, "IAM").
    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'scangate worker: CodePipeline custom action jobs, Inspector ScanSbom, ECR pulls, reports bucket',
    });
    this.grantWorkerPermissions(this.taskRole, prefix, props);

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDef', {
      cpu: props.cpu ?? 512,
      memoryLimitMiB: props.memoryLimitMiB ?? DEFAULT_MEMORY_MIB,
      taskRole: this.taskRole,
      runtimePlatform: { cpuArchitecture: ecs.CpuArchitecture.X86_64, operatingSystemFamily: ecs.OperatingSystemFamily.LINUX },
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: props.logRetention ?? logs.RetentionDays.THREE_MONTHS,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const stopTimeout = Duration.seconds(shutdownGrace.toSeconds() + STOP_MARGIN.toSeconds());
    this.container = this.taskDefinition.addContainer('worker', {
      image: workerImage(this, props),
      command: ['worker'],
      environment: {
        ...props.environment,
        SCANGATE_PROVIDER: this.provider,
        SCANGATE_CATEGORY: this.category,
        SCANGATE_ACTION_VERSION: this.actionVersion,
        SCANGATE_CONCURRENCY: String(props.concurrency ?? 2),
        SCANGATE_REPORTS: this.reportsUri,
        // the worker names an encryption on every write, which wins over
        // the bucket default: name the bucket's KMS key so reports use it
        ...(props.reportsEncryptionKey ? { SCANGATE_REPORTS_KMS_KEY: props.reportsEncryptionKey.keyArn } : {}),
        SCANGATE_HEALTH_ADDR: `0.0.0.0:${healthPort}`,
        SCANGATE_SHUTDOWN_GRACE: `${shutdownGrace.toSeconds()}s`,
        SCANGATE_JOB_TIMEOUT: `${jobTimeout(props).toSeconds()}s`,
        SCANGATE_LOG_FORMAT: 'json',
        // the value of the EMF `Service` dimension the alarms and scaling read
        SCANGATE_METRICS_SERVICE: this.provider,
        ...(props.registryHosts ? { SCANGATE_REGISTRY_HOSTS: props.registryHosts.join(',') } : {}),
      },
      // resolved by the ECS agent with the execution role; the task role
      // (and so the scanned workload's reach) never reads the secret
      secrets: props.registryCredentials
        ? {
            SCANGATE_REGISTRY_USERNAME: ecs.Secret.fromSecretsManager(props.registryCredentials, 'username'),
            SCANGATE_REGISTRY_PASSWORD: ecs.Secret.fromSecretsManager(props.registryCredentials, 'password'),
          }
        : undefined,
      logging: ecs.LogDrivers.awsLogs({
        logGroup: this.logGroup,
        streamPrefix: 'scangate',
        // a slow CloudWatch must not stall the worker's stderr
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
        maxBufferSize: Size.mebibytes(25),
      }),
      portMappings: [{ containerPort: healthPort, name: 'health' }],
      healthCheck: props.containerHealthCheck === false ? undefined : healthCheck(),
      stopTimeout,
      // the worker keeps images, SBOMs and reports in memory; nothing is written to disk
      readonlyRootFilesystem: true,
    });

    // No inbound rule: /healthz is checked from inside the task.
    const securityGroup = new ec2.SecurityGroup(this, 'WorkerSecurityGroup', {
      vpc,
      description: 'scangate workers: outbound only (registries, AWS APIs)',
      allowAllOutbound: props.allowAllOutbound ?? false,
    });
    if (!props.allowAllOutbound) securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'HTTPS: registries and AWS APIs');

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: this.cluster,
      taskDefinition: this.taskDefinition,
      desiredCount: props.desiredCount,
      vpcSubnets: props.vpcSubnets ?? { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [securityGroup],
      assignPublicIp: false,
      // a rolling deploy starts new workers before stopping old ones, so
      // polling never pauses; old ones drain within the stop timeout
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { rollback: true },
      propagateTags: ecs.PropagatedTagSource.SERVICE,
    });

    this.addScaling(props);
    this.addAlarms(props);
    this.addOperatorViews(props);
  }

  /** A worker metric (EMF, namespace ScanGate, dimension Service). */
  public metric(name: string, extraDimensions: Record<string, string> = {}, props: cloudwatch.MetricOptions = {}): cloudwatch.Metric {
    checkWorkerMetric(name, ['Service', ...Object.keys(extraDimensions)]);
    return new cloudwatch.Metric({
      namespace: METRICS_NAMESPACE,
      metricName: name,
      dimensionsMap: { Service: this.provider, ...extraDimensions },
      period: Duration.minutes(1),
      ...props,
    });
  }

  /**
   * Scale on work, not CPU: a worker waiting on a registry or on a 30-minute
   * ECR basic scan holds a slot and burns no CPU. Slot utilisation
   * (SlotsBusy/Slots, metric math) is the primary target; CPU stays as a
   * second policy for CPU-bound cataloguing. Target tracking scales out
   * when either asks and in only when both allow.
   */
  private addScaling(props: ScanGateProps): void {
    const scaling = this.service.autoScaleTaskCount({
      minCapacity: props.minWorkers ?? 1,
      maxCapacity: props.maxWorkers ?? 4,
    });
    const common = {
      scaleOutCooldown: Duration.seconds(60),
      // slow scale-in: task protection keeps busy workers, but a short
      // burst should not cycle tasks
      scaleInCooldown: Duration.minutes(10),
      disableScaleIn: props.scaleIn === false,
    };
    scaling.scaleToTrackCustomMetric('Slots', {
      metric: this.metric('SlotsBusy', {}, { statistic: 'Sum' }),
      targetValue: props.targetSlotUtilization ?? 70,
      ...common,
    });
    // Target tracking takes metric math only through the raw properties:
    // 100 * sum(SlotsBusy) / sum(Slots) across all workers.
    const cfn = this.service.node
      .findAll()
      .find((c): c is appscaling.CfnScalingPolicy => c instanceof appscaling.CfnScalingPolicy && /\/Slots\//.test(c.node.path));
    if (!cfn) throw new Error('ScanGate: the slot target-tracking policy was not created');
    const base = 'TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification';
    for (const k of ['MetricName', 'Namespace', 'Dimensions', 'Statistic', 'Unit']) cfn.addPropertyDeletionOverride(`${base}.${k}`);
    const stat = (id: string, name: string) => ({
      Id: id,
      ReturnData: false,
      MetricStat: {
        Metric: { Namespace: METRICS_NAMESPACE, MetricName: name, Dimensions: [{ Name: 'Service', Value: this.provider }] },
        Stat: 'Sum',
      },
    });
    checkWorkerMetric('SlotsBusy', ['Service']);
    checkWorkerMetric('Slots', ['Service']);
    cfn.addPropertyOverride(`${base}.Metrics`, [
      stat('busy', 'SlotsBusy'),
      stat('slots', 'Slots'),
      { Id: 'utilization', Expression: '100 * busy / slots', Label: 'Slot utilisation (%)', ReturnData: true },
    ]);
    scaling.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: props.targetCpuUtilization ?? 60, ...common });
  }

  /** ECR pull (and scan) rights on one more repository; see `ecrRepositoryArns`. */
  public allowRepository(repository: ecr.IRepository): void {
    repository.grantPull(this.taskRole);
  }

  /**
   * Failed gate executions as events, the Logs Insights queries of the
   * runbook, and a small dashboard.
   */
  private addOperatorViews(props: ScanGateProps): void {
    const rule = new events.Rule(this, 'ActionFailedRule', {
      description: `scangate ${this.provider}: a pipeline action of this provider failed`,
      eventPattern: {
        source: ['aws.codepipeline'],
        detailType: ['CodePipeline Action Execution State Change'],
        detail: { state: ['FAILED'], type: { owner: ['Custom'], provider: [this.provider], category: [this.category] } },
      },
    });
    if (props.alarmTopic) rule.addTarget(new eventsTargets.SnsTopic(props.alarmTopic));
    this.actionFailedRule = rule;
    // Over the worker's job lines (one per finished job, `event` =
    // "job_finished"): field names as the worker writes them.
    for (const { name, query } of OPERATIONS.queries) {
      new logs.QueryDefinition(this, `Query${name.replace(/\W+(\w)/g, (_, c: string) => c.toUpperCase()).replace(/^\w/, (c) => c.toUpperCase())}`, {
        queryDefinitionName: `scangate/${this.provider}/${name}`,
        queryString: new logs.QueryString({ ...parseQuery(query) }),
        logGroups: [this.logGroup],
      });
    }
    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: `scangate-${this.provider}` });
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Slots busy / slots',
        left: [this.metric('SlotsBusy', {}, { statistic: 'Sum' }), this.metric('Slots', {}, { statistic: 'Sum' })],
      }),
      new cloudwatch.GraphWidget({
        title: 'Jobs by result',
        left: ['PASS', 'FAIL', ...FAILURE_TYPES].map((r) => this.metric('JobsCompleted', { Result: r }, { statistic: 'Sum', label: r })),
      }),
      new cloudwatch.GraphWidget({
        title: 'Job duration and oldest job (s)',
        left: [this.metric('JobDurationSeconds', {}, { statistic: 'p90' }), this.metric('OldestJobAgeSeconds', {}, { statistic: 'Maximum' })],
      }),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms }),
    );
  }

  /** Alarms an operator acts on; cdk/README.md, "Runbook", explains each. */
  private addAlarms(props: ScanGateProps): void {
    const pollWindow = props.pollAlarmPeriod ?? Duration.minutes(10);
    const periods = Math.max(1, Math.round(pollWindow.toMinutes()));
    const add = (id: string, alarmProps: cloudwatch.AlarmProps) => {
      const alarm = new cloudwatch.Alarm(this, id, alarmProps);
      if (props.alarmTopic) {
        alarm.addAlarmAction(new cwActions.SnsAction(props.alarmTopic));
        alarm.addOkAction(new cwActions.SnsAction(props.alarmTopic));
      }
      this.alarms.push(alarm);
    };
    // Every live worker writes Slots every 60 s; none for the whole window
    // means no worker is running its poll loop.
    add('NoWorkerAlarm', {
      alarmDescription: `scangate ${this.provider}: no worker reported for ${periods} min (Slots absent)`,
      metric: this.metric('Slots', {}, { statistic: 'SampleCount' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: periods,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
    // Poll errors in every minute of the window: no poll succeeded.
    add('PollFailingAlarm', {
      alarmDescription: `scangate ${this.provider}: polls failing for ${periods} min`,
      metric: this.metric('PollErrors', {}, { statistic: 'Sum' }),
      threshold: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      evaluationPeriods: periods,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    for (const type of FAILURE_TYPES) {
      add(`${type}Alarm`, {
        alarmDescription: `scangate ${this.provider}: jobs ending in ${type}`,
        metric: this.metric('JobsCompleted', { Result: type }, { statistic: 'Sum', period: Duration.minutes(5) }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    }
    // the deadline, the result's retries (SCANGATE_RESULT_RETRY, 10 min), a margin
    const timeout = Duration.seconds(jobTimeout(props).toSeconds() + RESULT_RETRY.toSeconds() + Duration.minutes(5).toSeconds());
    add('StuckJobAlarm', {
      alarmDescription: `scangate ${this.provider}: a job older than its deadline and result retries (${timeout.toMinutes()} min)`,
      metric: this.metric('OldestJobAgeSeconds', {}, { statistic: 'Maximum' }),
      threshold: timeout.toSeconds(),
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    add('TasksBelowMinimumAlarm', {
      alarmDescription: `scangate ${this.provider}: fewer running workers than minWorkers`,
      metric: new cloudwatch.Metric({
        namespace: 'ECS/ContainerInsights',
        metricName: 'RunningTaskCount',
        dimensionsMap: { ClusterName: this.cluster.clusterName, ServiceName: this.service.serviceName },
        statistic: 'Minimum',
        period: Duration.minutes(1),
      }),
      threshold: props.minWorkers ?? 1,
      comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 5,
      treatMissingData: cloudwatch.TreatMissingData.BREACHING,
    });
  }

  /** Action type ARN, the only resource PollForJobs can be scoped to. */
  public get actionTypeArn(): string {
    return actionTypeArn(Stack.of(this), this.category, this.provider, this.actionVersion);
  }

  private grantWorkerPermissions(role: iam.Role, prefix: string, props: ScanGateProps): void {
    const stack = Stack.of(this);
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'PollOwnActionType',
        actions: ['codepipeline:PollForJobs'],
        resources: [actionTypeArn(stack, this.category, this.provider, this.actionVersion)],
      }),
    );
    // IAM has no resource type for these: a job id is not an ARN. The job id
    // and nonce come from PollForJobs, which is scoped above.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'AnswerJobs',
        actions: [
          'codepipeline:AcknowledgeJob',
          'codepipeline:GetJobDetails',
          'codepipeline:PutJobSuccessResult',
          'codepipeline:PutJobFailureResult',
        ],
        resources: ['*'],
      }),
    );
    // ScanSbom takes a document and reads no AWS resource: no resource type.
    if (this.engines.includes('inspector')) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ sid: 'ScanSbom', actions: ['inspector-scan:ScanSbom'], resources: ['*'] }),
      );
    }
    // ECR enhanced scanning keeps its findings in Inspector: reading them
    // needs inspector2:ListFindings, which has no resource type.
    if (this.engines.includes('ecr-enhanced')) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({ sid: 'EnhancedFindings', actions: ['inspector2:ListFindings'], resources: ['*'] }),
      );
    }
    // ECS task scale-in protection, set while a job is in flight, on this
    // task only (the agent endpoint calls it with the task's own ARN).
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'OwnTaskProtection',
        actions: ['ecs:UpdateTaskProtection', 'ecs:GetTaskProtection'],
        resources: [stack.formatArn({ service: 'ecs', resource: 'task', resourceName: `${this.cluster.clusterName}/*` })],
      }),
    );
    // The registry token is account-wide by design: no resource type.
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ sid: 'EcrToken', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'EcrPull',
        // pulls only (manifests and layer URLs); the ecr-* engines add theirs
        actions: [
          'ecr:BatchGetImage',
          'ecr:GetDownloadUrlForLayer',
          ...(this.engines.includes('ecr-basic') ? ['ecr:StartImageScan'] : []),
          ...(this.engines.some((e) => e.startsWith('ecr-')) ? ['ecr:DescribeImageScanFindings'] : []),
        ],
        resources: props.ecrRepositoryArns?.length
          ? props.ecrRepositoryArns
          : [stack.formatArn({ service: 'ecr', resource: 'repository', resourceName: '*' })],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReportsReadWrite',
        actions: ['s3:PutObject', 's3:GetObject'],
        resources: [this.reportsBucket.arnForObjects(`${prefix}*`)],
      }),
    );
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({
        sid: 'ReportsList',
        actions: ['s3:ListBucket'],
        resources: [this.reportsBucket.bucketArn],
        conditions: prefix ? { StringLike: { 's3:prefix': [`${prefix}*`] } } : undefined,
      }),
    );
    if (props.reportsEncryptionKey) {
      role.addToPrincipalPolicy(
        new iam.PolicyStatement({
          sid: 'ReportsKey',
          actions: ['kms:Decrypt', 'kms:GenerateDataKey'],
          resources: [props.reportsEncryptionKey.keyArn],
        }),
      );
    }
    // Input and output artifacts are read and written with the temporary
    // credentials PollForJobs returns for each job, so the role needs no
    // access to the pipelines' artifact buckets.
  }
}

/** `arn:PARTITION:codepipeline:REGION:ACCOUNT:actiontype:Custom/CATEGORY/PROVIDER/VERSION` */
export function actionTypeArn(stack: Stack, category: string, provider: string, version: string): string {
  return stack.formatArn({
    service: 'codepipeline',
    resource: 'actiontype',
    resourceName: `Custom/${category}/${provider}/${version}`,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}

/** The repository root: the Dockerfile and the sources it copies. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

function workerImage(scope: Construct, props: ScanGateProps): ecs.ContainerImage {
  if (props.image) return props.image;
  if (props.imageUri) {
    // A private ECR image needs pull permissions on the execution role,
    // which fromRegistry does not grant; fromEcrRepository does.
    const ecrImage = parseEcrImageUri(props.imageUri);
    if (ecrImage) {
      const repo = ecr.Repository.fromRepositoryArn(scope, 'WorkerImageRepository', ecrImage.repositoryArn);
      return ecs.ContainerImage.fromEcrRepository(repo, ecrImage.tagOrDigest);
    }
    return ecs.ContainerImage.fromRegistry(props.imageUri);
  }
  return ecs.ContainerImage.fromAsset(REPO_ROOT, {
    file: 'Dockerfile',
    platform: Platform.LINUX_AMD64,
    // Only what the Dockerfile copies: the repository root also holds
    // target/ (gigabytes of build output and image corpus) and this app's
    // node_modules, which would otherwise be hashed and staged into cdk.out.
    // test/app.test.ts checks this list against the Dockerfile's COPY lines.
    exclude: ['*', '!Dockerfile', '!Cargo.toml', '!Cargo.lock', '!src', '!integration-tests', 'integration-tests/target'],
  });
}

/**
 * `ACCOUNT.dkr.ecr.REGION.amazonaws.com[.cn]/REPO[:TAG|@sha256:…]` as a
 * repository ARN and a tag or digest; undefined for any other registry.
 */
export function parseEcrImageUri(uri: string): { repositoryArn: string; tagOrDigest: string } | undefined {
  const m = /^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?\/([a-z0-9][a-z0-9._\/-]*?)(?:@(sha256:[a-f0-9]{64})|:([\w][\w.-]{0,127}))?$/.exec(uri);
  if (!m) return undefined;
  const [, account, region, cn, repo, digest, tag] = m;
  const partition = cn ? 'aws-cn' : region.startsWith('us-gov-') ? 'aws-us-gov' : 'aws';
  return { repositoryArn: `arn:${partition}:ecr:${region}:${account}:repository/${repo}`, tagOrDigest: digest ?? tag ?? 'latest' };
}

/**
 * `scangate healthcheck` probes /healthz from inside the task: exec form,
 * because the distroless image has no shell.
 */
function healthCheck(): ecs.HealthCheck {
  return {
    command: ['CMD', '/usr/local/bin/scangate', 'healthcheck'],
    interval: Duration.seconds(30),
    timeout: Duration.seconds(5),
    retries: 3,
    startPeriod: Duration.seconds(30),
  };
}

/**
 * `scangate-ACCOUNT-REGION-PROVIDER`: fixed by where the stack deploys, not
 * generated, so the action type's URL templates survive a re-deploy.
 */
export function defaultBucketName(stack: Stack, provider: string): string {
  const slug = provider.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  // account (12) + region (at most 14) + 11 fixed characters leaves 26
  return `scangate-${stack.account}-${stack.region}-${slug.slice(0, 26).replace(/-+$/, '') || 'gate'}`;
}

function normalizePrefix(prefix: string): string {
  const p = prefix.replace(/^\/+|\/+$/g, '');
  return p ? `${p}/` : '';
}

function validate(props: ScanGateProps, category: string): void {
  if (props.image && props.imageUri) {
    throw new Error('ScanGate: give image or imageUri, not both');
  }
  if (!(ACTION_CATEGORIES as readonly string[]).includes(category)) {
    throw new Error(`ScanGate: unknown action category ${JSON.stringify(category)}; one of ${ACTION_CATEGORIES.join(', ')}`);
  }
  const grace = props.shutdownGrace;
  if (grace && !Token.isUnresolved(grace.toSeconds()) && grace.toSeconds() + STOP_MARGIN.toSeconds() > MAX_STOP_TIMEOUT.toSeconds()) {
    throw new Error(
      `ScanGate: shutdownGrace ${grace.toSeconds()} s plus ${STOP_MARGIN.toSeconds()} s margin exceeds Fargate's ${MAX_STOP_TIMEOUT.toSeconds()} s stop timeout`,
    );
  }
  const min = props.minWorkers ?? 1;
  const max = props.maxWorkers ?? 4;
  if (min === 0) {
    // CodePipeline has no queue-depth metric and every scaling signal is
    // emitted by a running worker, so a service at 0 tasks would never see
    // the work that should scale it out.
    throw new Error('ScanGate: minWorkers must be at least 1: with 0 workers nothing polls CodePipeline, so no metric can ever scale the service out');
  }
  if (min < 1 || max < 1 || min > max) {
    throw new Error(`ScanGate: need 1 <= minWorkers <= maxWorkers (got ${min}..${max})`);
  }
  for (const e of props.engines ?? []) {
    if (!(ENGINES as readonly string[]).includes(e)) throw new Error(`ScanGate: unknown engine ${JSON.stringify(e)}; one of ${ENGINES.join(', ')}`);
  }
  if (props.engines && props.engines.length === 0) throw new Error('ScanGate: engines must name at least one engine');
  const key = props.reportsEncryptionKey;
  if (key && !Token.isUnresolved(key.keyArn) && isKmsAlias(key.keyArn)) {
    throw new Error(
      `ScanGate: reportsEncryptionKey ${key.keyArn} is an alias; IAM grants on an alias ARN do not cover the key it points to: give the key ARN (arn:...:key/UUID)`,
    );
  }
  if (props.registryCredentials && !props.registryHosts?.length) {
    throw new Error('ScanGate: registryCredentials needs registryHosts (SCANGATE_REGISTRY_HOSTS): the worker offers credentials only to listed hosts');
  }
  if (props.existingReportsBucket && props.reportsBucketName) {
    throw new Error('ScanGate: give existingReportsBucket or reportsBucketName, not both');
  }
  const c = props.concurrency ?? 2;
  if (!Number.isInteger(c) || c < 1 || c > 64) {
    throw new Error(`ScanGate: concurrency must be an integer in 1..64 (got ${c}), as the worker accepts`);
  }
  const mem = props.memoryLimitMiB ?? DEFAULT_MEMORY_MIB;
  if (!Token.isUnresolved(mem) && mem < MIN_MEMORY_MIB_PER_JOB * c) {
    throw new Error(
      `ScanGate: memoryLimitMiB ${mem} is too small for ${c} concurrent jobs: give each at least ${MIN_MEMORY_MIB_PER_JOB} MiB (memoryLimitMiB >= ${MIN_MEMORY_MIB_PER_JOB * c}) or lower concurrency`,
    );
  }
  if (props.reportsPrefix !== undefined && /[{}?&#]/.test(props.reportsPrefix)) {
    throw new Error(`ScanGate: reportsPrefix ${JSON.stringify(props.reportsPrefix)} would break the report URLs`);
  }
}

/** A `fields … | filter … | stats … | sort … | limit N` string as QueryString props. */
function parseQuery(query: string): logs.QueryStringProps {
  const out: Record<string, string> = {};
  for (const part of query.split(' | ')) {
    const [cmd, ...rest] = part.split(' ');
    out[cmd === 'fields' ? 'fields' : cmd] = rest.join(' ');
  }
  return {
    fields: out.fields?.split(', '),
    filterStatements: out.filter ? [out.filter] : undefined,
    statsStatements: out.stats ? [out.stats] : undefined,
    sort: out.sort,
    limit: out.limit ? Number(out.limit) : undefined,
  };
}

/** `alias/NAME` or an alias ARN (`arn:…:kms:…:alias/NAME`). */
export function isKmsAlias(keyIdOrArn: string): boolean {
  return /^alias\//.test(keyIdOrArn) || /^arn:[^:]+:kms:[^:]*:[^:]*:alias\//.test(keyIdOrArn);
}

/** CfnOutputs of the things a pipeline author and an operator need. */
export function addOutputs(scope: Construct, gate: ScanGate): void {
  new CfnOutput(scope, 'ReportsBucketName', { value: gate.reportsBucket.bucketName, description: 'Reports bucket' });
  new CfnOutput(scope, 'ReportsUri', { value: gate.reportsUri, description: 'SCANGATE_REPORTS of the workers' });
  new CfnOutput(scope, 'ActionTypeId', {
    value: `Custom/${gate.category}/${gate.provider}/${gate.actionVersion}`,
    description: 'Action type owner/category/provider/version for pipeline actions',
  });
  new CfnOutput(scope, 'ActionTypeArn', { value: gate.actionTypeArn });
  new CfnOutput(scope, 'ServiceName', { value: gate.service.serviceName, description: 'ECS service of the workers' });
  new CfnOutput(scope, 'ClusterName', { value: gate.cluster.clusterName });
  new CfnOutput(scope, 'LogGroupName', { value: gate.logGroup.logGroupName });
}
