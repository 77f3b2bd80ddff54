import { Stack, StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { addOutputs, isKmsAlias, ScanGate, ScanGateProps } from './scangate';

export interface ScanGateStackProps extends StackProps {
  readonly scanGate?: ScanGateProps;
  /** Look up this existing VPC instead of creating one (needs `env` with account and region). */
  readonly vpcId?: string;
  /** Encrypt the reports bucket with this existing KMS key. */
  readonly reportsKmsKeyArn?: string;
}

/** One scangate deployment: action type, reports bucket, workers, outputs. */
export class ScanGateStack extends Stack {
  public readonly scanGate: ScanGate;

  constructor(scope: Construct, id: string, props: ScanGateStackProps = {}) {
    super(scope, id, props);
    const vpc = props.vpcId ? ec2.Vpc.fromLookup(this, 'Vpc', { vpcId: props.vpcId }) : props.scanGate?.vpc;
    if (props.reportsKmsKeyArn && isKmsAlias(props.reportsKmsKeyArn)) {
      throw new Error(
        `reportsKmsKeyArn ${props.reportsKmsKeyArn} is a KMS alias: IAM grants on an alias do not cover its key; give the key ARN (arn:...:key/UUID)`,
      );
    }
    const reportsEncryptionKey = props.reportsKmsKeyArn
      ? kms.Key.fromKeyArn(this, 'ReportsKey', props.reportsKmsKeyArn)
      : props.scanGate?.reportsEncryptionKey;
    this.scanGate = new ScanGate(this, 'ScanGate', { ...props.scanGate, vpc, reportsEncryptionKey });
    addOutputs(this, this.scanGate);
  }
}
