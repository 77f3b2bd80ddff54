// Planted secrets shared by the unit tests (`mod samples` in tests.rs) and
// the end-to-end tests (`include!` in integration-tests/tests/
// risks_secrets.rs): one list, so that every rule's sample is tested in
// every location. Plain std only.

/// Planted secrets: random values in each format (none is a real
/// credential). (rule id, file path, file text, the raw secret value).
pub fn samples() -> Vec<(&'static str, &'static str, String, String)> {
    let b64 = "2O76UMFxFkM+R5Kjp1vRt/1fjORS+6ilI8ihN5KXSc7Tvo+hBKqFYY+kv5ZJr3J1";
    let pem = |kind: &str| {
        format!("-----BEGIN {kind}-----\n{b64}\n{b64}\nAB12==\n-----END {kind}-----\n")
    };
    let aws_id = "AKIAZ7QW3XK5N2P4RT6Y";
    let aws_secret = "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";
    let session = "IQoJb3JpZ2luX2VjEuHgxzNNAL5wIScGebcy8F5n3+YNBDRzrZSgqbjG3uhkWKFLf6xuI5aHUQPFeNBTxaQWk8JzFalHlsZfYcMMDktXP+tKsf2rcDkdfrUnW5gcF/Ha6ili8GjHEAD6+Wj9KfzjsQGMrb9h/";
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6InN2YyJ9.QLioDnkHIfxIq2HZt-PlJhx2jIclHkCiHp6bR1IqfEo";
    let sa_body = b64.repeat(3);
    let mut v: Vec<(&str, &str, String, String)> = vec![
        (
            "aws-access-key-id",
            "/app/.env",
            format!("AWS_ACCESS_KEY_ID={aws_id}\n"),
            aws_id.into(),
        ),
        (
            "aws-secret-access-key",
            "/root/.aws/credentials",
            format!(
                "[default]\naws_access_key_id = {aws_id}\naws_secret_access_key = {aws_secret}\n"
            ),
            aws_secret.into(),
        ),
        (
            "aws-secret-access-key",
            "/app/settings.py",
            format!("KEY = '{aws_id}'\n\nSECRET = '{aws_secret}'\n"),
            aws_secret.into(),
        ),
        (
            "aws-session-token",
            "/app/session.sh",
            format!("export AWS_SESSION_TOKEN={session}\n"),
            session.into(),
        ),
        (
            "private-key",
            "/etc/app/tls.key",
            pem("RSA PRIVATE KEY"),
            b64.into(),
        ),
        (
            "private-key",
            "/root/.ssh/id_ed25519",
            pem("OPENSSH PRIVATE KEY"),
            b64.into(),
        ),
        (
            "private-key",
            "/home/u/secret.asc",
            format!(
                "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\nComment: x\n\n{b64}\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----\n"
            ),
            b64.into(),
        ),
        (
            "gcp-service-account-key",
            "/app/sa.json",
            format!(
                "{{\n  \"type\": \"service_account\",\n  \"private_key_id\": \"abc\",\n  \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{sa_body}\\n-----END PRIVATE KEY-----\\n\",\n  \"client_email\": \"svc@proj-1.iam.gserviceaccount.com\"\n}}\n"
            ),
            sa_body.clone(),
        ),
        (
            "github-token",
            "/app/config.yml",
            "token: ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP\n".into(),
            "ghp_wR4y9ojfljoQoaF1LlqsajAIxNKu8iS2G8NP".into(),
        ),
        (
            "github-token",
            "/app/gh.txt",
            "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\n".into(),
            "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".into(),
        ),
        (
            "gitlab-token",
            "/app/ci.env",
            "GITLAB_TOKEN=glpat-I6bWHtP3fS2qHx6kwXoI\n".into(),
            "glpat-I6bWHtP3fS2qHx6kwXoI".into(),
        ),
        (
            "slack-token",
            "/app/slack.conf",
            "bot_token = xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx\n".into(),
            "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx".into(),
        ),
        (
            "slack-webhook",
            "/app/notify.sh",
            "curl -X POST https://hooks.slack.com/services/T0ABCDEFG/B0HIJKLMN/AbCdEfGhIjKlMnOpQrStUvWx\n".into(),
            "T0ABCDEFG/B0HIJKLMN/AbCdEfGhIjKlMnOpQrStUvWx".into(),
        ),
        (
            "stripe-secret-key",
            "/app/pay.js",
            "const stripe = require('stripe')('sk_live_IXGvOoNZYW2mZp0zVZomHFwU');\n".into(),
            "sk_live_IXGvOoNZYW2mZp0zVZomHFwU".into(),
        ),
        (
            "google-api-key",
            "/app/maps.html",
            "<script src=\"https://maps.googleapis.com/maps/api/js?key=AIzaddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Zk\"></script>\n".into(),
            "AIzaddJ8HyS5SUkCnD8zRA9a9SkpXz9w3QlY7Zk".into(),
        ),
        (
            "npm-token",
            "/app/publish.sh",
            "NPM_TOKEN=npm_UkkibjL5DZPjN0MEQ7wjJJibaZUPgHV7iB3m npm publish\n".into(),
            "npm_UkkibjL5DZPjN0MEQ7wjJJibaZUPgHV7iB3m".into(),
        ),
        (
            "pypi-token",
            "/app/upload.sh",
            "twine upload -p pypi-AgEIcHlwaS5vcmcBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY dist/*\n".into(),
            "pypi-AgEIcHlwaS5vcmcBdGBLEPH1qhT61qtc4xatws8phP9nhFyJfm5di4PzJ59FHz5r1pY4OjE2jBMptUsGr7CmY".into(),
        ),
        (
            "dockerhub-token",
            "/app/login.sh",
            "echo dckr_pat_4FkQ1okTBGzvAmwufUxbvJDCTby | docker login -u bob --password-stdin\n".into(),
            "dckr_pat_4FkQ1okTBGzvAmwufUxbvJDCTby".into(),
        ),
        (
            "jwt",
            "/app/client.cfg",
            format!("Authorization: Bearer {jwt}\n"),
            jwt.into(),
        ),
        (
            "docker-config-auth",
            "/root/.docker/config.json",
            "{\n  \"auths\": {\n    \"registry.example.com\": {\n      \"auth\": \"ZGVwbG95OlprM21ROXhXMnBMNw==\"\n    }\n  }\n}\n".into(),
            "ZGVwbG95OlprM21ROXhXMnBMNw==".into(),
        ),
        (
            "npmrc-auth",
            "/home/node/.npmrc",
            "registry=https://registry.example.com/\n//registry.example.com/:_authToken=3f9c2a7e-8b1d-4c5e-9f0a-6d2b8e4c1a7f\n".into(),
            "3f9c2a7e-8b1d-4c5e-9f0a-6d2b8e4c1a7f".into(),
        ),
        (
            "pypirc-password",
            "/root/.pypirc",
            "[distutils]\nindex-servers = internal\n\n[internal]\nrepository = https://pypi.example.com\nusername = bob\npassword = Tr0ub4dor&3xyz\n".into(),
            "Tr0ub4dor&3xyz".into(),
        ),
        (
            "netrc-password",
            "/root/.netrc",
            "machine ftp.example.com login bob password S3cr3tNetrcPw\n".into(),
            "S3cr3tNetrcPw".into(),
        ),
        (
            "git-credentials",
            "/root/.git-credentials",
            "https://bob:Zq8xW2vL9mK4@git.example.com\n".into(),
            "Zq8xW2vL9mK4".into(),
        ),
    ];
    for (scheme, pw) in [
        ("postgres", "Xk7pQ2mW9zR4"),
        ("postgresql", "Xk7pQ2mW9zR5"),
        ("mysql", "Xk7pQ2mW9zR6"),
        ("mongodb", "Xk7pQ2mW9zR7"),
        ("mongodb+srv", "Xk7pQ2mW9zR8"),
        ("redis", "Xk7pQ2mW9zR9"),
    ] {
        v.push((
            "database-url",
            "/app/db.conf",
            format!("url = {scheme}://app:{pw}@db.internal:5432/app\n"),
            pw.into(),
        ));
    }
    v
}
