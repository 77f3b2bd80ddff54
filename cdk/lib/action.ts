import * as codepipeline from 'aws-cdk-lib/aws-codepipeline';
import { Construct } from 'constructs';
import { ActionCategory, ScanGate } from './scangate';

/** The action type coordinates (owner is always `Custom`). */
export interface ScanGateActionType {
  readonly provider: string;
  readonly category: ActionCategory;
  readonly actionVersion: string;
}

/** One scangate gate in a pipeline: the DESIGN.md action properties. */
export interface ScanGateActionProps {
  readonly actionName: string;
  /** The deployed action type: a `ScanGate` construct, or its coordinates from another stack. @default Custom/Test/ScanGate/1 */
  readonly actionType?: ScanGateActionType;
  /** Image to scan, usually `#{BuildVariables.IMAGE_URL}`. @default taken from the input artifact */
  readonly imageUrl?: string;
  /** Source artifact with a policy file, or a build's imageDetail.json / imagedefinitions.json. */
  readonly input?: codepipeline.Artifact;
  /** A zip with the SBOM and the reports. */
  readonly output?: codepipeline.Artifact;
  readonly criticalThreshold?: number;
  readonly highThreshold?: number;
  readonly mediumThreshold?: number;
  readonly lowThreshold?: number;
  readonly fixableOnly?: boolean;
  readonly policyFile?: string;
  readonly platform?: string;
  readonly engine?: 'inspector' | 'ecr-basic' | 'ecr-enhanced';
  /** Namespace of the output variables (VERDICT, CRITICAL, REPORT_URI, …). */
  readonly variablesNamespace?: string;
  readonly runOrder?: number;
}

/**
 * A scangate action for a CDK-defined pipeline. CodePipeline runs it by
 * queueing a job for the action type; the scangate workers pick it up.
 */
export class ScanGateAction extends codepipeline.Action {
  protected readonly providedActionProperties: codepipeline.ActionProperties;
  private readonly props: ScanGateActionProps;

  constructor(props: ScanGateActionProps) {
    super();
    this.props = props;
    const t = props.actionType ?? { provider: 'ScanGate', category: 'Test', actionVersion: '1' };
    this.providedActionProperties = {
      actionName: props.actionName,
      category: t.category as codepipeline.ActionCategory,
      owner: 'Custom',
      provider: t.provider,
      version: t.actionVersion,
      artifactBounds: { minInputs: 0, maxInputs: 1, minOutputs: 0, maxOutputs: 1 },
      inputs: props.input ? [props.input] : [],
      outputs: props.output ? [props.output] : [],
      variablesNamespace: props.variablesNamespace,
      runOrder: props.runOrder,
    };
  }

  /** `#{namespace.NAME}` of one of the gate's output variables. */
  public variable(name: 'VERDICT' | 'HIGHEST_SEVERITY' | 'CRITICAL' | 'HIGH' | 'MEDIUM' | 'LOW' | 'OTHER' | 'SUPPRESSED' | 'COMPONENTS' | 'IMAGE_DIGEST' | 'REPORT_URI' | 'SBOM_URI'): string {
    return this.variableExpression(name);
  }

  protected bound(_scope: Construct, stage: codepipeline.IStage, _options: codepipeline.ActionBindOptions): codepipeline.ActionConfig {
    const p = this.props;
    // The pipeline must be created after the action type it uses, or
    // CloudFormation may create it first and CodePipeline rejects the
    // unknown action type (in another stack this becomes a stack dependency).
    if (p.actionType instanceof ScanGate) stage.pipeline.node.addDependency(p.actionType.actionType);
    // Configuration values are strings to CodePipeline; unset ones are left
    // out so the worker applies its defaults.
    const configuration: Record<string, string> = {};
    const set = (key: string, v: string | number | boolean | undefined) => {
      if (v !== undefined) configuration[key] = String(v);
    };
    set('ImageUrl', p.imageUrl);
    set('CriticalThreshold', p.criticalThreshold);
    set('HighThreshold', p.highThreshold);
    set('MediumThreshold', p.mediumThreshold);
    set('LowThreshold', p.lowThreshold);
    set('FixableOnly', p.fixableOnly);
    set('PolicyFile', p.policyFile);
    set('Platform', p.platform);
    set('Engine', p.engine);
    return { configuration };
  }
}
