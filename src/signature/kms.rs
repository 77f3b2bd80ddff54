//! `awskms:///ARN` cosign keys: the public key comes from AWS KMS
//! (`kms:GetPublicKey`), in the region the key ARN names, with the worker's
//! own AWS credentials. The answer is still checked: a signing key, a
//! bounded size, and (by the caller) a key kind cosign signs with.

use std::future::Future;
use std::pin::Pin;

use aws_sdk_kms::error::DisplayErrorContext;
use aws_sdk_kms::types::KeyUsageType;

use super::keys::KmsPublicKeys;

/// A DER SubjectPublicKeyInfo of an RSA-4096 key is 550 bytes.
const MAX_PUBLIC_KEY_BYTES: usize = 16 << 10;

/// [`KmsPublicKeys`] through the AWS SDK.
#[derive(Clone)]
pub struct AwsKms {
    sdk: aws_config::SdkConfig,
}

impl AwsKms {
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        AwsKms { sdk: sdk.clone() }
    }

    /// A client for the key's region (`arn:aws:kms:REGION:…`); key ids
    /// that are not ARNs use the worker's region.
    fn client(&self, key_id: &str) -> aws_sdk_kms::Client {
        let mut config = aws_sdk_kms::config::Builder::from(&self.sdk);
        if let Some(region) = key_id
            .strip_prefix("arn:")
            .and_then(|rest| rest.split(':').nth(2))
            .filter(|r| !r.is_empty())
        {
            config = config.region(aws_sdk_kms::config::Region::new(region.to_owned()));
        }
        aws_sdk_kms::Client::from_conf(config.build())
    }
}

impl KmsPublicKeys for AwsKms {
    fn public_key<'a>(
        &'a self,
        key_id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send + 'a>> {
        Box::pin(async move {
            let out = self
                .client(key_id)
                .get_public_key()
                .key_id(key_id)
                .send()
                .await
                .map_err(|e| format!("kms:GetPublicKey: {}", DisplayErrorContext(&e)))?;
            if out.key_usage() != Some(&KeyUsageType::SignVerify) {
                return Err(format!(
                    "the KMS key's usage is {:?}, not SIGN_VERIFY",
                    out.key_usage().map(KeyUsageType::as_str)
                ));
            }
            let key = out
                .public_key()
                .ok_or("kms:GetPublicKey returned no public key")?
                .as_ref();
            if key.len() > MAX_PUBLIC_KEY_BYTES {
                return Err(format!("a public key of {} bytes", key.len()));
            }
            Ok(key.to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_kms::types::{KeySpec, KeyUsageType};
    use integration_tests::process::MotoServer;

    use super::*;
    use crate::signature::cfg::CosignPolicy;
    use crate::signature::{KeyError, SignaturePolicy, SignaturePolicyError, keys::KeyKind};

    /// Against moto's KMS: a P-256 signing key is read through GetPublicKey;
    /// an encryption key is refused.
    #[tokio::test]
    async fn public_keys_from_kms() {
        let moto = MotoServer::start().unwrap();
        let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("eu-west-1"))
            .endpoint_url(&moto.endpoint)
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "AKIDTEST", "test", None, None, "test",
            ))
            .load()
            .await;
        let admin = aws_sdk_kms::Client::new(&sdk);
        let arn = |spec: KeySpec, usage: KeyUsageType| {
            let admin = admin.clone();
            async move {
                admin
                    .create_key()
                    .key_spec(spec)
                    .key_usage(usage)
                    .send()
                    .await
                    .unwrap()
                    .key_metadata()
                    .unwrap()
                    .arn()
                    .unwrap()
                    .to_owned()
            }
        };
        let signing = arn(KeySpec::EccNistP256, KeyUsageType::SignVerify).await;
        let encrypting = arn(KeySpec::SymmetricDefault, KeyUsageType::EncryptDecrypt).await;
        let kms = AwsKms::new(&sdk);
        let policy = |arn: &str| SignaturePolicy {
            required: true,
            cosign: CosignPolicy {
                keys: vec![format!("awskms:///{arn}")],
            },
            ..SignaturePolicy::default()
        };
        let no_files = |p: &str| -> Result<String, String> { Err(format!("no file {p}")) };
        let trust = policy(&signing).load(&no_files, Some(&kms)).await.unwrap();
        assert_eq!(trust.keys.len(), 1);
        assert_eq!(trust.keys[0].kind, KeyKind::EcdsaP256);
        assert_eq!(trust.keys[0].label, format!("awskms:///{signing}"));

        let err = policy(&encrypting)
            .load(&no_files, Some(&kms))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignaturePolicyError::Key(KeyError::Kms(_, e)) if e.contains("SIGN_VERIFY") || e.contains("GetPublicKey")),
            "{err}"
        );
        let missing = format!(
            "{}/00000000-0000-0000-0000-000000000000",
            signing.rsplit_once('/').unwrap().0
        );
        let err = policy(&missing)
            .load(&no_files, Some(&kms))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SignaturePolicyError::Key(KeyError::Kms(..))),
            "{err}"
        );
    }
}
