// An example pipeline gated by scangate: not part of the app (bin/scangate.ts
// never instantiates it), synthesized by test/examples.test.ts. Deploy it
// with `npx cdk deploy -a 'npx ts-node examples/pipeline.ts'` after the
// ScanGate stack.
import { App, Stack, StackProps } from 'aws-cdk-lib';
import * as codebuild from 'aws-cdk-lib/aws-codebuild';
import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import * as actions from 'aws-cdk-lib/aws-codepipeline-actions';
import * as ecr from 'aws-cdk-lib/aws-ecr';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { ScanGateAction, ScanGateActionType } from '../lib/action';

export interface ExamplePipelineProps extends StackProps {
  /** The deployed gate's coordinates (stack output ActionTypeId). @default Custom/Test/ScanGate/1 */
  readonly actionType?: ScanGateActionType;
  /** Build with CodeBuild's ECRBuildAndPublish action instead of a buildspec. @default false */
  readonly ecrBuildAndPublish?: boolean;
}

/** Source -> build and push -> ScanGate on the pushed digest -> an action reading the verdict. */
export class ExamplePipelineStack extends Stack {
  public readonly pipeline: codepipeline.Pipeline;

  constructor(scope: Construct, id: string, props: ExamplePipelineProps = {}) {
    super(scope, id, props);
    const repo = new ecr.Repository(this, 'AppRepository', { imageScanOnPush: true, imageTagMutability: ecr.TagMutability.IMMUTABLE });
    const sourceBucket = new s3.Bucket(this, 'Source', { versioned: true, enforceSSL: true, blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL });
    const source = new codepipeline.Artifact('Source');

    const build = props.ecrBuildAndPublish ? this.ecrBuildAndPublish(repo, source) : this.codeBuild(repo, source);
    // ECRBuildAndPublish exports ECR_REPOSITORY_NAME and ECR_IMAGE_DIGEST_ID
    const imageUrl = props.ecrBuildAndPublish
      ? `${repo.repositoryUri}@#{BuildVariables.ECR_IMAGE_DIGEST_ID}`
      : '#{BuildVariables.IMAGE_URL}';
    const gate = new ScanGateAction({
      actionName: 'ScanGate',
      actionType: props.actionType,
      imageUrl,
      input: source, // the policy file lives with the sources
      policyFile: 'scangate-policy.yaml',
      variablesNamespace: 'Gate',
    });
    const report = new codebuild.PipelineProject(this, 'Announce', {
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        env: { variables: {} },
        phases: { build: { commands: ['echo "gate verdict: $VERDICT, report: $REPORT_URI"'] } },
      }),
    });
    this.pipeline = new codepipeline.Pipeline(this, 'Pipeline', {
      pipelineType: codepipeline.PipelineType.V2,
      stages: [
        { stageName: 'Source', actions: [new actions.S3SourceAction({ actionName: 'Source', bucket: sourceBucket, bucketKey: 'app.zip', output: source })] },
        { stageName: 'Build', actions: [build] },
        { stageName: 'Gate', actions: [gate] },
        {
          stageName: 'Release',
          actions: [
            new actions.CodeBuildAction({
              actionName: 'Announce',
              project: report,
              input: source,
              environmentVariables: {
                VERDICT: { value: gate.variable('VERDICT') },
                REPORT_URI: { value: gate.variable('REPORT_URI') },
              },
            }),
          ],
        },
      ],
    });
  }

  /** The buildspec pushes by digest and exports IMAGE_URL=REPO@sha256:… . */
  private codeBuild(repo: ecr.Repository, source: codepipeline.Artifact): codepipeline.IAction {
    const project = new codebuild.PipelineProject(this, 'Build', {
      environment: { buildImage: codebuild.LinuxBuildImage.STANDARD_7_0, privileged: true },
      environmentVariables: { REPO: { value: repo.repositoryUri } },
      buildSpec: codebuild.BuildSpec.fromObject({
        version: '0.2',
        env: { 'exported-variables': ['IMAGE_URL'] },
        phases: {
          pre_build: { commands: ['aws ecr get-login-password | docker login --username AWS --password-stdin "${REPO%%/*}"'] },
          build: {
            commands: [
              'docker build -t "$REPO:$CODEBUILD_RESOLVED_SOURCE_VERSION" .',
              'docker push "$REPO:$CODEBUILD_RESOLVED_SOURCE_VERSION"',
              'IMAGE_URL="$(docker inspect --format "{{index .RepoDigests 0}}" "$REPO:$CODEBUILD_RESOLVED_SOURCE_VERSION")"',
              'case "$IMAGE_URL" in *@sha256:*) ;; *) echo "no digest for $IMAGE_URL" >&2; exit 1;; esac',
            ],
          },
        },
      }),
    });
    repo.grantPullPush(project);
    return new actions.CodeBuildAction({ actionName: 'Build', project, input: source, variablesNamespace: 'BuildVariables' });
  }

  /** CodePipeline's managed ECRBuildAndPublish action (no project to keep). */
  private ecrBuildAndPublish(repo: ecr.Repository, source: codepipeline.Artifact): codepipeline.IAction {
    return new EcrBuildAndPublishAction(repo, source);
  }
}

/** ECRBuildAndPublish has no L2 action in aws-cdk-lib: a thin wrapper. */
class EcrBuildAndPublishAction extends codepipeline.Action {
  protected readonly providedActionProperties: codepipeline.ActionProperties;
  constructor(private readonly repo: ecr.Repository, source: codepipeline.Artifact) {
    super();
    this.providedActionProperties = {
      actionName: 'Build',
      category: codepipeline.ActionCategory.BUILD,
      owner: 'AWS',
      provider: 'ECRBuildAndPublish',
      version: '1',
      artifactBounds: { minInputs: 1, maxInputs: 1, minOutputs: 0, maxOutputs: 0 },
      inputs: [source],
      variablesNamespace: 'BuildVariables',
    };
  }
  protected bound(_scope: Construct, _stage: codepipeline.IStage, options: codepipeline.ActionBindOptions): codepipeline.ActionConfig {
    this.repo.grantPullPush(options.role);
    return { configuration: { ECRRepositoryName: this.repo.repositoryName, ImageTags: 'latest' } };
  }
}

if (require.main === module) {
  const app = new App();
  new ExamplePipelineStack(app, 'ScanGateExamplePipeline', { ecrBuildAndPublish: app.node.tryGetContext('ecrBuildAndPublish') === 'true' });
  app.synth();
}
