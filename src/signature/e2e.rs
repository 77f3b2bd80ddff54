//! End to end: signatures made the way cosign and Notation make them (the
//! cryptography by openssl, the formats as the cosign and Notary Project
//! specifications publish them), pushed to the real Debian
//! `docker-registry` 2.8 (cosign's `.sig` tag, and the OCI referrers tag
//! because that registry has no referrers API) and to an in-process OCI 1.1
//! server that has the referrers API; and written into an OCI image layout
//! as cosign and Notation store them there.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use integration_tests::images::{BuiltImage, ImageBuilder, Layer, push_blob, push_manifest};
use integration_tests::oci_server::OciServer;
use integration_tests::registry::Registry;
use serde_json::json;
use time::OffsetDateTime;

use super::cbor::{self, Value};
use super::cfg::{CosignPolicy, NotationPolicy};
use super::*;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const EMPTY_CONFIG: &str = "application/vnd.oci.empty.v1+json";
const PAYLOAD_TYPE: &str = "application/vnd.cncf.notary.payload.v1+json";
const PROFILE: &str = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/release";

/// A scratch directory removed on drop (no tempfile in this crate).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Self {
        let p = std::env::temp_dir().join(format!("scangate-sig-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    P256,
    P384,
    Ed25519,
    Rsa,
}

/// A private key in `DIR/NAME.key` and its public key `DIR/NAME.pub`.
struct Key {
    dir: PathBuf,
    name: String,
    kind: Kind,
}

impl Key {
    fn new(dir: &Path, name: &str, kind: Kind) -> Key {
        let key = format!("{name}.key");
        match kind {
            Kind::P256 | Kind::P384 => {
                let curve = if kind == Kind::P256 {
                    "prime256v1"
                } else {
                    "secp384r1"
                };
                openssl(
                    dir,
                    &["ecparam", "-name", curve, "-genkey", "-noout", "-out", &key],
                );
            }
            Kind::Ed25519 => {
                openssl(dir, &["genpkey", "-algorithm", "ed25519", "-out", &key]);
            }
            Kind::Rsa => {
                openssl(
                    dir,
                    &[
                        "genpkey",
                        "-algorithm",
                        "rsa",
                        "-pkeyopt",
                        "rsa_keygen_bits:2048",
                        "-out",
                        &key,
                    ],
                );
            }
        }
        openssl(
            dir,
            &[
                "pkey",
                "-in",
                &key,
                "-pubout",
                "-out",
                &format!("{name}.pub"),
            ],
        );
        Key {
            dir: dir.to_owned(),
            name: name.to_owned(),
            kind,
        }
    }

    fn public_pem(&self) -> String {
        std::fs::read_to_string(self.dir.join(format!("{}.pub", self.name))).unwrap()
    }

    fn public_der(&self) -> Vec<u8> {
        let pubfile = format!("{}.pub", self.name);
        openssl(
            &self.dir,
            &["pkey", "-pubin", "-in", &pubfile, "-outform", "DER"],
        )
    }

    /// The signature as cosign's signers make it: ECDSA ASN.1 DER over
    /// SHA-256 (SHA-384 for P-384), pure Ed25519, RSA-PSS for Notation.
    fn sign(&self, data: &[u8]) -> Vec<u8> {
        let msg = format!("msg-{}", uuid::Uuid::new_v4());
        std::fs::write(self.dir.join(&msg), data).unwrap();
        let key = format!("{}.key", self.name);
        let sig = match self.kind {
            Kind::P256 => openssl(&self.dir, &["dgst", "-sha256", "-sign", &key, &msg]),
            Kind::P384 => openssl(&self.dir, &["dgst", "-sha384", "-sign", &key, &msg]),
            Kind::Ed25519 => openssl(
                &self.dir,
                &["pkeyutl", "-sign", "-inkey", &key, "-rawin", "-in", &msg],
            ),
            Kind::Rsa => openssl(
                &self.dir,
                &[
                    "dgst",
                    "-sha256",
                    "-sigopt",
                    "rsa_padding_mode:pss",
                    "-sigopt",
                    "rsa_pss_saltlen:digest",
                    "-sign",
                    &key,
                    &msg,
                ],
            ),
        };
        std::fs::remove_file(self.dir.join(&msg)).unwrap();
        sig
    }

    /// cosign's form: as [`Key::sign`], but RSA keys sign PKCS#1 v1.5.
    fn sign_cosign(&self, data: &[u8]) -> Vec<u8> {
        if self.kind != Kind::Rsa {
            return self.sign(data);
        }
        let msg = format!("msg-{}", uuid::Uuid::new_v4());
        std::fs::write(self.dir.join(&msg), data).unwrap();
        let key = format!("{}.key", self.name);
        let sig = openssl(&self.dir, &["dgst", "-sha256", "-sign", &key, &msg]);
        std::fs::remove_file(self.dir.join(&msg)).unwrap();
        sig
    }

    /// JWS/COSE form: ECDSA as fixed-width `r || s`.
    fn sign_jose(&self, data: &[u8]) -> Vec<u8> {
        let sig = self.sign(data);
        match self.kind {
            Kind::P256 => der_to_raw(&sig, 32),
            Kind::P384 => der_to_raw(&sig, 48),
            _ => sig,
        }
    }
}

fn der_to_raw(sig: &[u8], width: usize) -> Vec<u8> {
    let mut outer = der::Der::new(sig);
    let mut seq = der::Der::new(outer.expect(der::SEQUENCE).unwrap());
    let mut out = Vec::new();
    for _ in 0..2 {
        let int = seq.expect(0x02).unwrap();
        let int: Vec<u8> = int.iter().copied().skip_while(|b| *b == 0).collect();
        out.extend(std::iter::repeat_n(0u8, width - int.len()));
        out.extend(int);
    }
    out
}

/// A CA: a self-signed root, and leaves it issues for code signing.
struct Ca {
    key: Key,
    pem: String,
    der: Vec<u8>,
}

impl Ca {
    fn new(dir: &Path, name: &str, subject: &str) -> Ca {
        let key = Key::new(dir, name, Kind::P256);
        let pem_file = format!("{name}.pem");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &format!("{name}.key"),
                "-subj",
                subject,
                "-days",
                "30",
                "-sha256",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
                "-out",
                &pem_file,
            ],
        );
        let der = openssl(dir, &["x509", "-in", &pem_file, "-outform", "DER"]);
        let pem = std::fs::read_to_string(dir.join(&pem_file)).unwrap();
        Ca { key, pem, der }
    }

    /// An intermediate CA issued by this one.
    fn intermediate(&self, name: &str, subject: &str) -> Ca {
        let (key, pem, der) = self.issue(
            name,
            subject,
            Kind::P256,
            "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
            "20",
        );
        Ca { key, pem, der }
    }

    /// A code-signing leaf as Notation's certificate requirements describe.
    fn leaf(&self, name: &str, subject: &str, kind: Kind) -> (Key, Vec<u8>) {
        self.leaf_with(
            name,
            subject,
            kind,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n",
        )
    }

    /// A leaf with these X.509 v3 extensions (openssl `-extfile` syntax).
    fn leaf_with(&self, name: &str, subject: &str, kind: Kind, extensions: &str) -> (Key, Vec<u8>) {
        let (key, _, der) = self.issue(name, subject, kind, extensions, "10");
        (key, der)
    }

    /// A new key `name` and its certificate issued by this CA: the key,
    /// the PEM and the DER of the certificate.
    fn issue(
        &self,
        name: &str,
        subject: &str,
        kind: Kind,
        extensions: &str,
        days: &str,
    ) -> (Key, String, Vec<u8>) {
        let dir = &self.key.dir;
        let key = Key::new(dir, name, kind);
        let ext = format!("{name}.ext");
        std::fs::write(dir.join(&ext), extensions).unwrap();
        let csr = format!("{name}.csr");
        let key_file = format!("{name}.key");
        openssl(
            dir,
            &[
                "req", "-new", "-key", &key_file, "-subj", subject, "-out", &csr,
            ],
        );
        let ca = &self.key.name;
        let pem_file = format!("{name}.pem");
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-days",
                days,
                "-sha256",
                "-extfile",
                &ext,
                "-out",
                &pem_file,
            ],
        );
        let der = openssl(dir, &["x509", "-in", &pem_file, "-outform", "DER"]);
        let pem = std::fs::read_to_string(dir.join(&pem_file)).unwrap();
        (key, pem, der)
    }
}

/// Where signature artifacts are pushed: the real registry, the
/// in-process server with the referrers API, or an OCI image layout.
enum Dest<'a> {
    Registry(&'a Registry),
    Server(&'a OciServer),
    Layout(&'a LayoutDir),
}

/// An OCI image layout written as cosign and Notation write signatures
/// into one: blobs under `blobs/sha256`, every manifest listed in
/// `index.json`, with its tag as `org.opencontainers.image.ref.name` or,
/// untagged, with its artifact type (as oras-go's layout store, which
/// `notation --oci-layout` uses, lists the referrers it pushes).
struct LayoutDir {
    dir: PathBuf,
    entries: std::sync::Mutex<Vec<serde_json::Value>>,
}

impl LayoutDir {
    fn new(dir: PathBuf) -> LayoutDir {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let layout = LayoutDir {
            dir,
            entries: std::sync::Mutex::new(Vec::new()),
        };
        layout.save(&[]);
        layout
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        self.dir
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    }

    fn blob(&self, bytes: &[u8]) -> String {
        let digest = integration_tests::images::sha256_digest(bytes);
        std::fs::write(self.blob_path(&digest), bytes).unwrap();
        digest
    }

    fn save(&self, entries: &[serde_json::Value]) {
        let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
        std::fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }

    /// Changes the `index.json` entries and writes the file again.
    fn edit(&self, change: impl FnOnce(&mut Vec<serde_json::Value>)) {
        let mut entries = self.entries.lock().unwrap();
        change(&mut entries);
        self.save(&entries);
    }

    fn manifest(&self, tag: Option<&str>, media_type: &str, bytes: &[u8]) -> String {
        let digest = self.blob(bytes);
        let mut entry = json!({"mediaType": media_type, "digest": digest, "size": bytes.len()});
        let parsed: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        match tag {
            Some(t) => entry["annotations"] = json!({"org.opencontainers.image.ref.name": t}),
            None => {
                if let Some(t) = parsed.get("artifactType") {
                    entry["artifactType"] = t.clone();
                }
            }
        }
        self.edit(|e| e.push(entry));
        digest
    }

    /// Takes the entry of `digest` out of `index.json` (its blob stays).
    fn unlist(&self, digest: &str) {
        self.edit(|e| e.retain(|d| d["digest"] != digest));
    }
}

impl Dest<'_> {
    async fn blob(&self, repo: &str, bytes: &[u8]) -> (String, usize) {
        let digest = match self {
            Dest::Registry(r) => push_blob(r, repo, bytes).await.unwrap(),
            Dest::Server(s) => s.add_blob(bytes.to_vec()),
            Dest::Layout(l) => l.blob(bytes),
        };
        (digest, bytes.len())
    }

    async fn manifest(
        &self,
        repo: &str,
        tag: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> String {
        let digest = integration_tests::images::sha256_digest(bytes);
        let tag = tag.unwrap_or(&digest);
        match self {
            Dest::Registry(r) => push_manifest(r, repo, tag, media_type, bytes)
                .await
                .unwrap(),
            Dest::Server(s) => s.add_manifest(repo, tag, media_type, bytes.to_vec()),
            Dest::Layout(l) => l.manifest(Some(tag).filter(|t| *t != digest), media_type, bytes),
        }
    }

    async fn image(&self, repo: &str, tag: &str, content: &str) -> (BuiltImage, String) {
        let built = ImageBuilder::new()
            .layer(Layer::new().file("etc/app", content.as_bytes().to_vec()))
            .build()
            .unwrap();
        let digest = match self {
            Dest::Registry(r) => built.push_to(r, &format!("{repo}:{tag}")).await.unwrap(),
            Dest::Server(s) => {
                for l in &built.layers {
                    s.add_blob(l.blob.clone());
                }
                s.add_blob(built.config_bytes.clone());
                s.add_manifest(repo, tag, &built.media_type, built.manifest_bytes.clone())
            }
            Dest::Layout(l) => {
                for layer in &built.layers {
                    l.blob(&layer.blob);
                }
                l.blob(&built.config_bytes);
                l.manifest(Some(tag), &built.media_type, &built.manifest_bytes)
            }
        };
        (built, digest)
    }

    /// A cosign signature manifest for `digest`: pushed under the `.sig`
    /// tag (`referrer: false`) or as an OCI 1.1 referrer.
    async fn cosign(
        &self,
        repo: &str,
        reference: &str,
        subject: (&str, usize),
        signs: &str,
        key: &Key,
        referrer: bool,
    ) {
        let payload = json!({
            "critical": {
                "identity": {"docker-reference": reference},
                "image": {"docker-manifest-digest": signs},
                "type": "cosign container image signature"
            },
            "optional": null
        })
        .to_string();
        let signature = STANDARD.encode(key.sign_cosign(payload.as_bytes()));
        let (payload_digest, payload_size) = self.blob(repo, payload.as_bytes()).await;
        let config = json!({
            "architecture": "", "created": "0001-01-01T00:00:00Z", "os": "",
            "history": [{"created": "0001-01-01T00:00:00Z"}],
            "rootfs": {"type": "layers", "diff_ids": [payload_digest]}, "config": {}
        })
        .to_string();
        let (config_digest, config_size) = self.blob(repo, config.as_bytes()).await;
        let mut manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{
                "mediaType": cosign::SIMPLE_SIGNING,
                "digest": payload_digest,
                "size": payload_size,
                "annotations": {cosign::SIGNATURE_ANNOTATION: signature}
            }]
        });
        if referrer {
            manifest["artifactType"] = json!(cosign::SIG_ARTIFACT_TYPE);
            manifest["subject"] =
                json!({"mediaType": OCI_MANIFEST, "digest": subject.0, "size": subject.1});
            self.manifest(repo, None, OCI_MANIFEST, manifest.to_string().as_bytes())
                .await;
        } else {
            let tag = cosign::signature_tag(subject.0);
            self.manifest(
                repo,
                Some(&tag),
                OCI_MANIFEST,
                manifest.to_string().as_bytes(),
            )
            .await;
        }
    }

    /// A new image `tag` with a cosign signature by `key` over `signs` (by
    /// default its own digest), under the `.sig` tag or as a referrer.
    /// Returns the image's digest.
    #[allow(clippy::too_many_arguments)]
    async fn image_with_cosign(
        &self,
        repo: &str,
        tag: &str,
        content: &str,
        reference: &str,
        signs: Option<&str>,
        key: &Key,
        referrer: bool,
    ) -> String {
        let (image, digest) = self.image(repo, tag, content).await;
        let subject = (digest.as_str(), image.manifest_bytes.len());
        let signs = signs.unwrap_or(&digest);
        self.cosign(repo, reference, subject, signs, key, referrer)
            .await;
        digest
    }

    /// A Notation signature manifest (referrer of `subject`) holding
    /// `envelope`; with `fallback_tag`, also the referrers index under the
    /// `sha256-HEX` tag as Notation writes it for registries without the
    /// referrers API. Returns the signature manifest's descriptor.
    async fn notation(
        &self,
        repo: &str,
        subject: (&str, usize),
        envelope: &[u8],
        media_type: &str,
    ) -> serde_json::Value {
        let (env_digest, env_size) = self.blob(repo, envelope).await;
        let (empty_digest, _) = self.blob(repo, b"{}").await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": notation::ARTIFACT_TYPE,
            "config": {"mediaType": EMPTY_CONFIG, "digest": empty_digest, "size": 2},
            "layers": [{"mediaType": media_type, "digest": env_digest, "size": env_size}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject.0, "size": subject.1},
            "annotations": {"io.cncf.notary.x509chain.thumbprint#S256": "[]"}
        })
        .to_string();
        let digest = self
            .manifest(repo, None, OCI_MANIFEST, manifest.as_bytes())
            .await;
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": manifest.len(),
            "artifactType": notation::ARTIFACT_TYPE,
        })
    }

    /// A new image `tag` with one Notation JWS signature, listed in its
    /// referrers tag; `sign` makes the envelope from the image's digest
    /// and manifest size. Returns the image's digest.
    async fn image_with_jws(
        &self,
        repo: &str,
        tag: &str,
        content: &str,
        sign: impl FnOnce(&str, usize) -> Vec<u8>,
    ) -> String {
        let (image, digest) = self.image(repo, tag, content).await;
        let size = image.manifest_bytes.len();
        let envelope = sign(&digest, size);
        let entry = self
            .notation(repo, (&digest, size), &envelope, notation::JWS_MEDIA_TYPE)
            .await;
        self.referrers_tag(repo, &digest, &[entry]).await;
        digest
    }

    async fn referrers_tag(&self, repo: &str, subject: &str, entries: &[serde_json::Value]) {
        let index =
            json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).to_string();
        let tag = subject.replacen(':', "-", 1);
        self.manifest(repo, Some(&tag), OCI_INDEX, index.as_bytes())
            .await;
    }
}

fn notary_payload(digest: &str, size: usize) -> Vec<u8> {
    json!({"targetArtifact": {"mediaType": OCI_MANIFEST, "digest": digest, "size": size}})
        .to_string()
        .into_bytes()
}

fn rfc3339(t: OffsetDateTime) -> String {
    describe_time(t)
}

/// A Notation JWS envelope (JSON serialization), `notary.x509` scheme.
fn jws(leaf: &(Key, Vec<u8>), ca: &Ca, payload: &[u8], expiry: Option<OffsetDateTime>) -> Vec<u8> {
    let mut protected = json!({
        "alg": "ES256",
        "cty": PAYLOAD_TYPE,
        "crit": ["io.cncf.notary.signingScheme"],
        "io.cncf.notary.signingScheme": "notary.x509",
        "io.cncf.notary.signingTime": rfc3339(OffsetDateTime::now_utc()),
    });
    if let Some(e) = expiry {
        protected["crit"] = json!(["io.cncf.notary.signingScheme", "io.cncf.notary.expiry"]);
        protected["io.cncf.notary.expiry"] = json!(rfc3339(e));
    }
    let p64 = URL_SAFE_NO_PAD.encode(protected.to_string());
    let pl64 = URL_SAFE_NO_PAD.encode(payload);
    let sig = leaf.0.sign_jose(format!("{p64}.{pl64}").as_bytes());
    json!({
        "payload": pl64,
        "protected": p64,
        "header": {
            "x5c": [STANDARD.encode(&leaf.1), STANDARD.encode(&ca.der)],
            "io.cncf.notary.signingAgent": "notation-go/1.3.0"
        },
        "signature": URL_SAFE_NO_PAD.encode(sig)
    })
    .to_string()
    .into_bytes()
}

/// The JWS `leaf` (issued by `ca`) makes over an image's digest and size,
/// for [`Dest::image_with_jws`].
fn jws_by<'a>(
    leaf: &'a (Key, Vec<u8>),
    ca: &'a Ca,
    expiry: Option<OffsetDateTime>,
) -> impl FnOnce(&str, usize) -> Vec<u8> + 'a {
    move |digest, size| jws(leaf, ca, &notary_payload(digest, size), expiry)
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn int(i: i64) -> Value {
    if i < 0 {
        Value::Nint((-1 - i) as u64)
    } else {
        Value::Uint(i as u64)
    }
}

/// A Notation COSE_Sign1 envelope. `profile` makes it an AWS Signer one
/// (`notary.x509.signingAuthority`, authentic signing time, the signed
/// signing-profile version).
fn cose(
    leaf: &(Key, Vec<u8>),
    ca: &Ca,
    payload: &[u8],
    alg: i64,
    profile: Option<&str>,
) -> Vec<u8> {
    let now = Value::Tag(1, Box::new(int(OffsetDateTime::now_utc().unix_timestamp())));
    let mut crit = vec![text("io.cncf.notary.signingScheme")];
    let mut header = vec![(int(1), int(alg)), (int(3), text(PAYLOAD_TYPE))];
    match profile {
        None => {
            header.push((text("io.cncf.notary.signingScheme"), text("notary.x509")));
            header.push((text("io.cncf.notary.signingTime"), now));
        }
        Some(p) => {
            for c in [
                "io.cncf.notary.authenticSigningTime",
                "io.cncf.notary.verificationPlugin",
                "com.amazonaws.signer.signingProfileVersion",
                "com.amazonaws.signer.signingJob",
            ] {
                crit.push(text(c));
            }
            header.push((
                text("io.cncf.notary.signingScheme"),
                text("notary.x509.signingAuthority"),
            ));
            header.push((text("io.cncf.notary.authenticSigningTime"), now));
            header.push((
                text("io.cncf.notary.verificationPlugin"),
                text("com.amazonaws.signer.notation.plugin"),
            ));
            header.push((
                text("com.amazonaws.signer.signingProfileVersion"),
                text(&format!("{p}/AbCdEfGhIj")),
            ));
            header.push((
                text("com.amazonaws.signer.signingJob"),
                text("arn:aws:signer:us-west-2:111122223333:/signing-jobs/1"),
            ));
        }
    }
    header.insert(1, (int(2), Value::Array(crit)));
    let mut protected = Vec::new();
    cbor::encode(&Value::Map(header), &mut protected);
    let sig = leaf.0.sign_jose(&cbor::sig_structure1(&protected, payload));
    let envelope = Value::Tag(
        18,
        Box::new(Value::Array(vec![
            Value::Bytes(protected),
            Value::Map(vec![
                (
                    int(33),
                    Value::Array(vec![
                        Value::Bytes(leaf.1.clone()),
                        Value::Bytes(ca.der.clone()),
                    ]),
                ),
                (
                    text("io.cncf.notary.signingAgent"),
                    text("notation-go/1.3.0"),
                ),
            ]),
            Value::Bytes(payload.to_vec()),
            Value::Bytes(sig),
        ])),
    );
    let mut out = Vec::new();
    cbor::encode(&envelope, &mut out);
    out
}

/// Serves `server` on a free loopback port; its address.
async fn serve(server: &OciServer) -> String {
    server
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
        .to_string()
}

fn options(addr: &str) -> PullOptions {
    PullOptions {
        insecure_registries: vec![addr.to_owned()],
        ..PullOptions::default()
    }
}

async fn trust(
    keys: Vec<String>,
    roots: Vec<String>,
    identities: &[&str],
    kms: Option<&dyn KmsPublicKeys>,
) -> TrustMaterial {
    SignaturePolicy {
        required: true,
        cosign: CosignPolicy { keys },
        notation: NotationPolicy {
            trust_store: roots,
            identities: identities.iter().map(|s| s.to_string()).collect(),
        },
    }
    .load(
        &|p| std::fs::read_to_string(p).map_err(|e| e.to_string()),
        kms,
    )
    .await
    .unwrap()
}

async fn check(addr: &str, repo: &str, digest: &str, trust: &TrustMaterial) -> SignatureVerdict {
    let image: ImageRef = format!("{addr}/{repo}:1").parse().unwrap();
    verify(&image, digest, trust, &options(addr)).await
}

fn reasons(v: &SignatureVerdict) -> Vec<&Invalid> {
    match v {
        SignatureVerdict::Invalid { rejections } => rejections.iter().map(|r| &r.reason).collect(),
        other => panic!("expected INVALID, got {other:?}"),
    }
}

/// `kms:GetPublicKey` served from a local key.
struct LocalKms(Vec<u8>);

impl KmsPublicKeys for LocalKms {
    fn public_key<'a>(
        &'a self,
        key_id: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, String>> + Send + 'a>>
    {
        Box::pin(async move {
            if key_id == "arn:aws:kms:us-east-1:111122223333:key/test" {
                Ok(self.0.clone())
            } else {
                Err(format!("NotFoundException: {key_id}"))
            }
        })
    }
}

#[tokio::test]
async fn cosign_tag_signatures_on_docker_registry() {
    let registry = Registry::start().unwrap();
    let dest = Dest::Registry(&registry);
    let scratch = Scratch::new();
    let ec = Key::new(&scratch.0, "ec", Kind::P256);
    let ed = Key::new(&scratch.0, "ed", Kind::Ed25519);
    let other = Key::new(&scratch.0, "other", Kind::P384);
    let repo = "team/app";
    let reference = format!("{}/{repo}", registry.addr);

    // valid ECDSA P-256, key from a file path
    let da = dest
        .image_with_cosign(repo, "1", "a", &reference, None, &ec, false)
        .await;
    let key_path = scratch.0.join("ec.pub").display().to_string();
    let t = trust(vec![key_path.clone()], vec![], &[], None).await;
    let started = std::time::Instant::now();
    let v = check(&registry.addr, repo, &da, &t).await;
    eprintln!("cosign tag signature verified in {:?}", started.elapsed());
    let SignatureVerdict::Verified {
        scheme,
        source,
        signer,
    } = &v
    else {
        panic!("{v:?}")
    };
    assert_eq!(*scheme, SignatureScheme::Cosign);
    assert_eq!(*source, format!("tag {}", cosign::signature_tag(&da)));
    assert!(
        signer.contains(&key_path) && signer.contains("sha256:"),
        "{signer}"
    );

    // the wrong key: a signature exists, nothing the policy trusts made it
    let t_other = trust(vec![other.public_pem()], vec![], &[], None).await;
    let v = check(&registry.addr, repo, &da, &t_other).await;
    assert_eq!(reasons(&v), [&Invalid::UntrustedKey]);
    assert!(v.reason().contains("untrusted key"), "{}", v.reason());

    // valid Ed25519, the key through awskms:/// (kms:GetPublicKey)
    let db = dest
        .image_with_cosign(repo, "2", "b", &reference, None, &ed, false)
        .await;
    let kms = LocalKms(ed.public_der());
    let arn = "awskms:///arn:aws:kms:us-east-1:111122223333:key/test";
    let t_ed = trust(vec![arn.to_owned()], vec![], &[], Some(&kms)).await;
    let v = check(&registry.addr, repo, &db, &t_ed).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { signer, .. } if signer.contains(arn)),
        "{v:?}"
    );

    // valid ECDSA P-384 (SHA-384, as cosign 2.x signs with P-384 keys)
    let de = dest
        .image_with_cosign(repo, "5", "e", &reference, None, &other, false)
        .await;
    let v = check(&registry.addr, repo, &de, &t_other).await;
    assert_eq!(v.name(), "VERIFIED", "{v:?}");

    // valid RSA (PKCS#1 v1.5, SHA-256)
    let rsa = Key::new(&scratch.0, "rsa", Kind::Rsa);
    let df = dest
        .image_with_cosign(repo, "6", "f", &reference, None, &rsa, false)
        .await;
    let t_rsa = trust(vec![rsa.public_pem()], vec![], &[], None).await;
    let v = check(&registry.addr, repo, &df, &t_rsa).await;
    assert_eq!(v.name(), "VERIFIED", "{v:?}");

    // a valid signature over another digest, copied under this digest's tag
    let dc = dest
        .image_with_cosign(repo, "3", "c", &reference, Some(&da), &ec, false)
        .await;
    let v = check(&registry.addr, repo, &dc, &t).await;
    assert_eq!(reasons(&v), [&Invalid::WrongDigest { signed: da.clone() }]);
    assert_eq!(v.name(), "INVALID");

    // unsigned: nothing under either scheme (docker-registry has no referrers API)
    let (_, dd) = dest.image(repo, "4", "d").await;
    let v = check(&registry.addr, repo, &dd, &t).await;
    let SignatureVerdict::Unsigned { detail } = &v else {
        panic!("{v:?}")
    };
    assert!(
        detail.contains("no referrers API") && detail.contains(".sig"),
        "{detail}"
    );
    assert!(v.fails(true) && !v.fails(false));
}

#[tokio::test]
async fn notation_jws_through_the_referrers_tag_on_docker_registry() {
    let registry = Registry::start().unwrap();
    let dest = Dest::Registry(&registry);
    let scratch = Scratch::new();
    let ca = Ca::new(&scratch.0, "root", "/C=US/ST=WA/O=Acme/CN=Acme Root");
    let stranger = Ca::new(&scratch.0, "stranger", "/C=US/ST=WA/O=Acme/CN=Acme Root");
    let leaf = ca.leaf("leaf", "/C=US/ST=WA/O=Acme/CN=release", Kind::P256);
    let repo = "team/svc";
    let identity = "x509.subject: CN=release, O=Acme, C=US";

    let da = dest
        .image_with_jws(repo, "1", "a", jws_by(&leaf, &ca, None))
        .await;
    let t = trust(vec![], vec![ca.pem.clone()], &[identity], None).await;
    let started = std::time::Instant::now();
    let v = check(&registry.addr, repo, &da, &t).await;
    eprintln!(
        "notation JWS (referrers tag) verified in {:?}",
        started.elapsed()
    );
    let SignatureVerdict::Verified { scheme, signer, .. } = &v else {
        panic!("{v:?}")
    };
    assert_eq!(*scheme, SignatureScheme::Notation);
    assert!(
        signer.contains("CN=release") && signer.contains("x509.subject: "),
        "{signer}"
    );

    // a leaf issued by an intermediate CA (x5c = leaf, intermediate; the
    // root only in the trust store), as AWS Signer's chains are
    let inter = ca.intermediate("inter", "/C=US/ST=WA/O=Acme/CN=Acme Issuing");
    let leaf2 = inter.leaf("leaf2", "/C=US/ST=WA/O=Acme/CN=release", Kind::P256);
    let de = dest
        .image_with_jws(repo, "5", "e", jws_by(&leaf2, &inter, None))
        .await;
    let v = check(&registry.addr, repo, &de, &t).await;
    assert_eq!(v.name(), "VERIFIED", "{v:?}");

    // a leaf without digitalSignature in its keyUsage
    let bad_ku = ca.leaf_with(
        "badku",
        "/C=US/ST=WA/O=Acme/CN=release",
        Kind::P256,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,keyEncipherment\nextendedKeyUsage=codeSigning\n",
    );
    let dg = dest
        .image_with_jws(repo, "6", "g", jws_by(&bad_ku, &ca, None))
        .await;
    let v = check(&registry.addr, repo, &dg, &t).await;
    assert!(
        matches!(reasons(&v)[..], [Invalid::Malformed(m)] if m.contains("digitalSignature")),
        "{v:?}"
    );

    // tampered: a signed payload (over the first image) swapped for this one's
    let dd = dest
        .image_with_jws(repo, "4", "d", |d, size| {
            let signed = jws(&leaf, &ca, &notary_payload(&da, size), None);
            let mut tampered: serde_json::Value = serde_json::from_slice(&signed).unwrap();
            tampered["payload"] = json!(URL_SAFE_NO_PAD.encode(notary_payload(d, size)));
            tampered.to_string().into_bytes()
        })
        .await;
    let v = check(&registry.addr, repo, &dd, &t).await;
    assert_eq!(reasons(&v), [&Invalid::BadSignature]);

    // identity mismatch
    let t_id = trust(
        vec![],
        vec![ca.pem.clone()],
        &["x509.subject: CN=someone-else, O=Acme"],
        None,
    )
    .await;
    let v = check(&registry.addr, repo, &da, &t_id).await;
    assert!(
        matches!(reasons(&v)[..], [Invalid::IdentityMismatch { found }] if found.contains("CN=release")),
        "{v:?}"
    );

    // untrusted root (same subject, another key)
    let t_root = trust(vec![], vec![stranger.pem.clone()], &[identity], None).await;
    let v = check(&registry.addr, repo, &da, &t_root).await;
    assert!(
        matches!(reasons(&v)[..], [Invalid::UntrustedRoot(_)]),
        "{v:?}"
    );

    // expired signature
    let past = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let db = dest
        .image_with_jws(repo, "2", "b", jws_by(&leaf, &ca, Some(past)))
        .await;
    let v = check(&registry.addr, repo, &db, &t).await;
    assert!(
        matches!(reasons(&v)[..], [Invalid::Expired { .. }]),
        "{v:?}"
    );
    assert!(v.reason().contains("expired"), "{}", v.reason());

    // a JWS over another digest, listed as a referrer of this one
    let dc = dest
        .image_with_jws(repo, "3", "c", |_, size| {
            jws(&leaf, &ca, &notary_payload(&da, size), None)
        })
        .await;
    let v = check(&registry.addr, repo, &dc, &t).await;
    assert_eq!(reasons(&v), [&Invalid::WrongDigest { signed: da.clone() }]);
}

#[tokio::test]
async fn cose_and_cosign_through_the_referrers_api() {
    let server = OciServer::new();
    let addr = serve(&server).await;
    let dest = Dest::Server(&server);
    let scratch = Scratch::new();
    let ca = Ca::new(&scratch.0, "root", "/C=US/ST=WA/O=Acme/CN=Acme Root");
    let rsa_leaf = ca.leaf("rsa", "/C=US/ST=WA/O=Acme/CN=release", Kind::Rsa);
    let signer_leaf = ca.leaf(
        "signer",
        "/C=US/ST=WA/O=AWS Signer/CN=AWS Signer",
        Kind::P384,
    );
    let ec = Key::new(&scratch.0, "ec", Kind::P256);
    let repo = "team/api";

    // COSE, PS256
    let (a, da) = dest.image(repo, "1", "a").await;
    let size = a.manifest_bytes.len();
    let envelope = cose(&rsa_leaf, &ca, &notary_payload(&da, size), -37, None);
    dest.notation(repo, (&da, size), &envelope, notation::COSE_MEDIA_TYPE)
        .await;
    let t = trust(
        vec![],
        vec![ca.pem.clone()],
        &["x509.subject: CN=release"],
        None,
    )
    .await;
    let v = check(&addr, repo, &da, &t).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { source, .. } if source.starts_with("referrer sha256:")),
        "{v:?}"
    );

    // COSE, ES384, AWS Signer: the signing profile is the identity
    let (b, db) = dest.image(repo, "2", "b").await;
    let size = b.manifest_bytes.len();
    let envelope = cose(
        &signer_leaf,
        &ca,
        &notary_payload(&db, size),
        -35,
        Some(PROFILE),
    );
    dest.notation(repo, (&db, size), &envelope, notation::COSE_MEDIA_TYPE)
        .await;
    let t_profile = trust(vec![], vec![ca.pem.clone()], &[PROFILE], None).await;
    let v = check(&addr, repo, &db, &t_profile).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { signer, .. } if signer.contains(PROFILE)),
        "{v:?}"
    );
    let other = "arn:aws:signer:us-west-2:111122223333:/signing-profiles/other";
    let t_other = trust(vec![], vec![ca.pem.clone()], &[other], None).await;
    let v = check(&addr, repo, &db, &t_other).await;
    assert!(
        matches!(reasons(&v)[..], [Invalid::IdentityMismatch { found }] if found.contains(PROFILE)),
        "{v:?}"
    );
    // and the plain notary.x509 COSE signature is no AWS Signer signature
    let v = check(&addr, repo, &da, &t_profile).await;
    assert!(
        matches!(reasons(&v)[..], [Invalid::IdentityMismatch { .. }]),
        "{v:?}"
    );

    // cosign as an OCI 1.1 referrer
    let (c, dc) = dest.image(repo, "3", "c").await;
    let reference = format!("{addr}/{repo}");
    dest.cosign(
        repo,
        &reference,
        (&dc, c.manifest_bytes.len()),
        &dc,
        &ec,
        true,
    )
    .await;
    let t_ec = trust(vec![ec.public_pem()], vec![], &[], None).await;
    let v = check(&addr, repo, &dc, &t_ec).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { scheme: SignatureScheme::Cosign, source, .. } if source.starts_with("referrer")),
        "{v:?}"
    );
}

#[tokio::test]
async fn hostile_registry_answers_are_bounded() {
    let server = OciServer::new();
    let addr = serve(&server).await;
    let dest = Dest::Server(&server);
    let repo = "evil/app";
    let scratch = Scratch::new();
    let ca = Ca::new(&scratch.0, "root", "/C=US/ST=WA/O=Acme/CN=Acme Root");
    let t = trust(vec![], vec![ca.pem.clone()], &["*"], None).await;

    // 200 garbage signatures: only the first max_signatures are fetched
    let (a, da) = dest.image(repo, "1", "a").await;
    for i in 0..200 {
        let garbage = format!("{{\"not\":\"a jws {i}\"}}");
        dest.notation(
            repo,
            (&da, a.manifest_bytes.len()),
            garbage.as_bytes(),
            notation::JWS_MEDIA_TYPE,
        )
        .await;
    }
    let started = std::time::Instant::now();
    let v = check(&addr, repo, &da, &t).await;
    let elapsed = started.elapsed();
    eprintln!("200 hostile referrers: {elapsed:?}");
    assert!(elapsed < std::time::Duration::from_secs(10), "{elapsed:?}");
    let limit = DiscoveryLimits::default().max_signatures;
    assert_eq!(reasons(&v).len(), limit, "{v:?}");
    assert!(
        reasons(&v)
            .iter()
            .all(|r| matches!(r, Invalid::Malformed(_)))
    );

    // a referrers tag (on a server without the API) whose entries lie:
    // a digest that would escape the URL, a size over the cap, a manifest
    // whose subject is another image, an envelope larger than the cap
    let plain = OciServer::new();
    plain.disable_referrers_api();
    let plain_addr = serve(&plain).await;
    let reg = Dest::Server(&plain);
    let (b, db) = reg.image(repo, "1", "b").await;
    let (_, dother) = reg.image(repo, "2", "other").await;
    let size = b.manifest_bytes.len();
    let foreign = reg
        .notation(repo, (&dother, size), b"{}", notation::JWS_MEDIA_TYPE)
        .await;
    let huge = vec![b' '; 300 << 10];
    let big = reg
        .notation(repo, (&db, size), &huge, notation::JWS_MEDIA_TYPE)
        .await;
    // a blob that is larger than its descriptor says (and than the cap)
    let (big_digest, _) = reg.blob(repo, &vec![b'x'; 1 << 20]).await;
    let (empty, _) = reg.blob(repo, b"{}").await;
    let liar = json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": notation::ARTIFACT_TYPE,
        "config": {"mediaType": EMPTY_CONFIG, "digest": empty, "size": 2},
        "layers": [{"mediaType": notation::JWS_MEDIA_TYPE, "digest": big_digest, "size": 10}],
        "subject": {"mediaType": OCI_MANIFEST, "digest": db, "size": size}
    })
    .to_string();
    let liar_digest = reg
        .manifest(repo, None, OCI_MANIFEST, liar.as_bytes())
        .await;
    let liar = json!({"mediaType": OCI_MANIFEST, "digest": liar_digest, "size": liar.len(), "artifactType": notation::ARTIFACT_TYPE});
    let entries = [
        json!({"mediaType": OCI_MANIFEST, "digest": "sha256:../../../v2/x/manifests/y", "size": 10, "artifactType": notation::ARTIFACT_TYPE}),
        json!({"mediaType": OCI_MANIFEST, "digest": format!("sha256:{}", "0".repeat(64)), "size": 1u64 << 40, "artifactType": notation::ARTIFACT_TYPE}),
        foreign,
        big,
        liar,
    ];
    reg.referrers_tag(repo, &db, &entries).await;
    let v = check(&plain_addr, repo, &db, &t).await;
    let details: Vec<String> = reasons(&v).iter().map(|r| r.to_string()).collect();
    assert_eq!(details.len(), 5, "{details:?}");
    assert!(details[0].contains("not sha256"), "{details:?}");
    assert!(details[1].contains("at most"), "{details:?}");
    assert!(
        details[2].contains("subject is not the scanned manifest"),
        "{details:?}"
    );
    assert!(details[3].contains("at most"), "{details:?}");
    assert!(details[4].contains("larger than"), "{details:?}");
}

/// Signatures behind registry authentication are fetched with the pull's
/// credentials, and only where those credentials may go: credentials for
/// another host are not sent, and the check then cannot answer (which a
/// required policy fails on) rather than pass.
#[tokio::test]
async fn credentials_follow_the_pull_rules() {
    use crate::image::{Credentials, HostCredentials, RegistryHosts};
    let registry = Registry::start_with_auth("ci", "s3cret").unwrap();
    let dest = Dest::Registry(&registry);
    let scratch = Scratch::new();
    let ec = Key::new(&scratch.0, "ec", Kind::P256);
    let repo = "private/app";
    let (a, da) = dest.image(repo, "1", "a").await;
    let reference = format!("{}/{repo}", registry.addr);
    dest.cosign(
        repo,
        &reference,
        (&da, a.manifest_bytes.len()),
        &da,
        &ec,
        false,
    )
    .await;
    let t = trust(vec![ec.public_pem()], vec![], &[], None).await;
    let image: ImageRef = format!("{reference}:1").parse().unwrap();
    let with = |host: &str| PullOptions {
        credentials: Some(HostCredentials {
            credentials: Credentials {
                username: "ci".into(),
                password: "s3cret".into(),
            },
            hosts: RegistryHosts::parse(&[host]).unwrap(),
        }),
        ..options(&registry.addr)
    };
    let v = verify(&image, &da, &t, &with(&registry.addr)).await;
    assert_eq!(v.name(), "VERIFIED", "{v:?}");
    for opts in [options(&registry.addr), with("registry.example.com")] {
        let v = verify(&image, &da, &t, &opts).await;
        let SignatureVerdict::NotChecked { detail } = &v else {
            panic!("{v:?}")
        };
        assert!(detail.contains("authentication"), "{detail}");
        assert!(v.fails(true));
    }
}

/// A registry that accepts connections and never answers: the whole check
/// is bounded in time, and the verdict says so (NOT_CHECKED, which a
/// required policy fails on).
#[tokio::test]
async fn a_stalling_registry_is_bounded_in_time() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let scratch = Scratch::new();
    let ec = Key::new(&scratch.0, "ec", Kind::P256);
    let t = trust(vec![ec.public_pem()], vec![], &[], None).await;
    let image: ImageRef = format!("{addr}/slow/app:1").parse().unwrap();
    let limits = DiscoveryLimits {
        max_time: std::time::Duration::from_secs(2),
        ..DiscoveryLimits::default()
    };
    let started = std::time::Instant::now();
    let digest = format!("sha256:{}", "a".repeat(64));
    let v = verify_with(
        &image,
        &digest,
        &t,
        &options(&addr),
        &limits,
        OffsetDateTime::now_utc(),
    )
    .await;
    let elapsed = started.elapsed();
    holder.abort();
    let SignatureVerdict::NotChecked { detail } = &v else {
        panic!("{v:?}")
    };
    assert!(detail.contains("took more than 2s"), "{detail}");
    assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
}

/// `cosign sign` of a multi-platform tag signs the index: the scanned
/// platform manifest is covered through the index that lists it.
#[tokio::test]
async fn a_signed_index_covers_its_platform_manifests() {
    let registry = Registry::start().unwrap();
    let dest = Dest::Registry(&registry);
    let scratch = Scratch::new();
    let ec = Key::new(&scratch.0, "ec", Kind::P256);
    let repo = "team/multi";
    let index = integration_tests::images::multi_platform_index(
        &ImageBuilder::new().layer(Layer::new().file("etc/app", b"multi".to_vec())),
    )
    .unwrap();
    let index_digest = index
        .push_to(&registry, &format!("{repo}:1"))
        .await
        .unwrap();
    let platform = index
        .image_for("linux", "amd64")
        .unwrap()
        .manifest_digest
        .clone();
    let reference = format!("{}/{repo}", registry.addr);
    let image: ImageRef = format!("{reference}:1").parse().unwrap();
    let t = trust(vec![ec.public_pem()], vec![], &[], None).await;
    let opts = options(&registry.addr);

    let v = verify_image(&image, &platform, Some(&index_digest), &t, &opts).await;
    let SignatureVerdict::Unsigned { detail } = &v else {
        panic!("{v:?}")
    };
    assert!(detail.contains(&index_digest), "{detail}");

    dest.cosign(
        repo,
        &reference,
        (&index_digest, index.bytes.len()),
        &index_digest,
        &ec,
        false,
    )
    .await;
    let v = verify_image(&image, &platform, Some(&index_digest), &t, &opts).await;
    let SignatureVerdict::Verified { source, .. } = &v else {
        panic!("{v:?}")
    };
    assert!(source.contains("over the index"), "{source}");
    // the platform manifest alone is not signed
    assert_eq!(
        verify(&image, &platform, &t, &opts).await.name(),
        "UNSIGNED"
    );
}

/// The signatures of the image in the layout `dir`, as `scangate scan
/// oci:DIR` checks them.
async fn check_layout(dir: &Path, digest: &str, t: &TrustMaterial) -> SignatureVerdict {
    verify_layout_with(
        dir,
        digest,
        t,
        &DiscoveryLimits::default(),
        OffsetDateTime::now_utc(),
    )
    .await
}

/// Signatures stored in an OCI image layout the ways cosign and Notation
/// store them there, verified by the same code as a registry's.
#[tokio::test]
async fn signatures_in_an_oci_layout() {
    let scratch = Scratch::new();
    let layout = LayoutDir::new(scratch.0.join("layout"));
    let dest = Dest::Layout(&layout);
    let dir = layout.dir.clone();
    let ec = Key::new(&scratch.0, "ec", Kind::P256);
    let other = Key::new(&scratch.0, "other", Kind::P256);
    let ca = Ca::new(&scratch.0, "root", "/C=US/ST=WA/O=Acme/CN=Acme Root");
    let leaf = ca.leaf("leaf", "/C=US/ST=WA/O=Acme/CN=release", Kind::P256);
    let repo = "local/app";
    let t = trust(vec![ec.public_pem()], vec![], &[], None).await;

    // cosign's .sig tag as a ref name in index.json
    let (a, da) = dest.image(repo, "1", "a").await;
    let subject_a = (da.as_str(), a.manifest_bytes.len());
    dest.cosign(repo, "local/app", subject_a, &da, &ec, false)
        .await;
    let v = check_layout(&dir, &da, &t).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { source, .. } if *source == format!("tag {}", cosign::signature_tag(&da))),
        "{v:?}"
    );
    // the wrong key
    let t_other = trust(vec![other.public_pem()], vec![], &[], None).await;
    assert_eq!(
        reasons(&check_layout(&dir, &da, &t_other).await),
        [&Invalid::UntrustedKey]
    );

    // a Notation JWS referrer listed in index.json with its artifact type
    let (b, db) = dest.image(repo, "2", "b").await;
    let size = b.manifest_bytes.len();
    let envelope = jws(&leaf, &ca, &notary_payload(&db, size), None);
    dest.notation(repo, (&db, size), &envelope, notation::JWS_MEDIA_TYPE)
        .await;
    let t_notary = trust(
        vec![],
        vec![ca.pem.clone()],
        &["x509.subject: CN=release"],
        None,
    )
    .await;
    let v = check_layout(&dir, &db, &t_notary).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { scheme: SignatureScheme::Notation, source, .. } if source.starts_with("referrer sha256:")),
        "{v:?}"
    );

    // a cosign referrer listed without its artifact type: found by its subject
    let (c, dc) = dest.image(repo, "3", "c").await;
    dest.cosign(
        repo,
        "local/app",
        (&dc, c.manifest_bytes.len()),
        &dc,
        &ec,
        true,
    )
    .await;
    layout.edit(|e| {
        for entry in e.iter_mut() {
            entry.as_object_mut().unwrap().remove("artifactType");
        }
    });
    let v = check_layout(&dir, &dc, &t).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { scheme: SignatureScheme::Cosign, source, .. } if source.starts_with("referrer")),
        "{v:?}"
    );

    // unsigned, though the layout holds other images' signatures
    let (_, dd) = dest.image(repo, "4", "d").await;
    let v = check_layout(&dir, &dd, &t).await;
    let SignatureVerdict::Unsigned { detail } = &v else {
        panic!("{v:?}")
    };
    assert!(detail.contains("OCI layout"), "{detail}");

    // a valid signature over another digest under this digest's .sig tag
    let (e, de) = dest.image(repo, "5", "e").await;
    dest.cosign(
        repo,
        "local/app",
        (&de, e.manifest_bytes.len()),
        &da,
        &ec,
        false,
    )
    .await;
    assert_eq!(
        reasons(&check_layout(&dir, &de, &t).await),
        [&Invalid::WrongDigest { signed: da.clone() }]
    );

    // only in the referrers index under the sha256-HEX tag
    let (f, df) = dest.image(repo, "6", "f").await;
    let size = f.manifest_bytes.len();
    let envelope = jws(&leaf, &ca, &notary_payload(&df, size), None);
    let entry = dest
        .notation(repo, (&df, size), &envelope, notation::JWS_MEDIA_TYPE)
        .await;
    layout.unlist(entry["digest"].as_str().unwrap());
    dest.referrers_tag(repo, &df, &[entry]).await;
    let v = check_layout(&dir, &df, &t_notary).await;
    assert_eq!(v.name(), "VERIFIED", "{v:?}");

    // cosign save: the signatures manifest marked kind=…/sigs
    let (g, dg) = dest.image(repo, "7", "g").await;
    dest.cosign(
        repo,
        "local/app",
        (&dg, g.manifest_bytes.len()),
        &dg,
        &ec,
        false,
    )
    .await;
    let tag = cosign::signature_tag(&dg);
    layout.edit(|e| {
        let sig = e
            .iter_mut()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
            .unwrap();
        sig["annotations"] = json!({"kind": "dev.cosignproject.cosign/sigs"});
    });
    let v = check_layout(&dir, &dg, &t).await;
    assert!(
        matches!(&v, SignatureVerdict::Verified { source, .. } if source.starts_with("cosign save")),
        "{v:?}"
    );
}

/// A layout is as hostile as a registry: a blob is read only from a
/// regular file under its blobs/sha256 (not through a symbolic link, even
/// to the right bytes; not from a FIFO or device), within the caps, and
/// index.json is bounded in size and entries.
#[tokio::test]
async fn hostile_layouts_are_bounded_and_refused() {
    let scratch = Scratch::new();
    let layout = LayoutDir::new(scratch.0.join("layout"));
    let dest = Dest::Layout(&layout);
    let dir = layout.dir.clone();
    let ec = Key::new(&scratch.0, "ec", Kind::P256);
    let t = trust(vec![ec.public_pem()], vec![], &[], None).await;
    let repo = "evil/app";
    let malformed = |v: &SignatureVerdict| -> String {
        match &reasons(v)[..] {
            [Invalid::Malformed(m)] => m.clone(),
            other => panic!("{other:?}"),
        }
    };

    // the payload blob a symbolic link to a file outside the layout that
    // holds exactly the signed bytes
    let (a, da) = dest.image(repo, "1", "a").await;
    dest.cosign(
        repo,
        "evil/app",
        (&da, a.manifest_bytes.len()),
        &da,
        &ec,
        false,
    )
    .await;
    assert_eq!(check_layout(&dir, &da, &t).await.name(), "VERIFIED");
    let sig_manifest: serde_json::Value = {
        let tag = cosign::signature_tag(&da);
        let entries = layout.entries.lock().unwrap();
        let d = entries
            .iter()
            .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag.as_str())
            .unwrap();
        serde_json::from_slice(
            &std::fs::read(layout.blob_path(d["digest"].as_str().unwrap())).unwrap(),
        )
        .unwrap()
    };
    let payload = layout.blob_path(sig_manifest["layers"][0]["digest"].as_str().unwrap());
    let outside = scratch.0.join("outside");
    std::fs::rename(&payload, &outside).unwrap();
    std::os::unix::fs::symlink(&outside, &payload).unwrap();
    let v = check_layout(&dir, &da, &t).await;
    assert!(malformed(&v).contains("not a regular file"), "{v:?}");

    // the payload a FIFO (an open would block) and then /dev/zero
    std::fs::remove_file(&payload).unwrap();
    let fifo = Command::new("mkfifo").arg(&payload).status().unwrap();
    assert!(fifo.success());
    let started = std::time::Instant::now();
    let v = check_layout(&dir, &da, &t).await;
    assert!(malformed(&v).contains("not a regular file"), "{v:?}");
    std::fs::remove_file(&payload).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &payload).unwrap();
    let v = check_layout(&dir, &da, &t).await;
    assert!(malformed(&v).contains("not a regular file"), "{v:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));

    // an oversized signature manifest under the .sig tag (its index entry
    // claims a small size)
    let (b, db) = dest.image(repo, "2", "b").await;
    let huge = json!({"schemaVersion": 2, "padding": " ".repeat(300 << 10)}).to_string();
    let sig_tag = cosign::signature_tag(&db);
    dest.manifest(repo, Some(&sig_tag), OCI_MANIFEST, huge.as_bytes())
        .await;
    layout.edit(|e| e.last_mut().unwrap()["size"] = json!(100));
    let v = check_layout(&dir, &db, &t).await;
    assert!(malformed(&v).contains("larger than"), "{v:?}");
    let _ = b;

    // `blobs` itself a symbolic link out of the layout: nothing is read
    let evil = LayoutDir::new(scratch.0.join("evil"));
    let (_, de) = Dest::Layout(&evil).image(repo, "1", "e").await;
    let elsewhere = scratch.0.join("elsewhere");
    std::fs::rename(evil.dir.join("blobs"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, evil.dir.join("blobs")).unwrap();
    let v = check_layout(&evil.dir, &de, &t).await;
    let SignatureVerdict::NotChecked { detail } = &v else {
        panic!("{v:?}")
    };
    assert!(detail.contains("outside the layout"), "{detail}");
    assert!(v.fails(true));

    // 10,000 index.json entries: refused after one bounded read
    let many = LayoutDir::new(scratch.0.join("many"));
    let (_, dm) = Dest::Layout(&many).image(repo, "1", "m").await;
    many.edit(|e| {
        for i in 0..10_000 {
            e.push(json!({"digest": format!("sha256:{i:064x}"), "size": 1}));
        }
    });
    let started = std::time::Instant::now();
    let v = check_layout(&many.dir, &dm, &t).await;
    let elapsed = started.elapsed();
    eprintln!("10,000 index.json entries refused in {elapsed:?}");
    let SignatureVerdict::NotChecked { detail } = &v else {
        panic!("{v:?}")
    };
    assert!(detail.contains("10001 entries"), "{detail}");
    assert!(elapsed < std::time::Duration::from_secs(2), "{elapsed:?}");
}
