//! Where credentials are issued: an answer that carries a credential from its own issuer
//! (an npm token from the npm registry, a GitHub installation token from api.github.com) or
//! from a token endpoint (OAuth, OpenID Connect, AWS STS, registries' token services) is a
//! login, not a leak. Redacting it would break `gh auth login`, `gcloud auth`, `npm login`,
//! `docker login` and every OAuth client: such credentials pass untouched and are recorded
//! as seen (action `allowed`).

/// The answer a credential arrives in: from which host, and whether that is a token
/// endpoint's successful answer.
#[derive(Debug, Clone, Default)]
pub struct Issuance {
    pub host: String,
    pub token_endpoint: bool,
}

impl Issuance {
    /// The answer to `method path` on `host` with `status`.
    pub fn of(host: &str, path: &str, status: u16) -> Issuance {
        Issuance {
            host: host.to_ascii_lowercase(),
            token_endpoint: (200..300).contains(&status) && token_endpoint(host, path),
        }
    }
}

/// True when `path` on `host` is where credentials are handed out.
pub fn token_endpoint(host: &str, path: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let path = path.split('?').next().unwrap_or("").to_ascii_lowercase();
    // AWS STS answers every action at its root (AssumeRole, GetSessionToken, …); IAM
    // Identity Center hands out role credentials at /federation/credentials.
    if host == "sts.amazonaws.com"
        || (host.starts_with("sts.")
            && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn")))
    {
        return true;
    }
    if host.starts_with("portal.sso.") && path.ends_with("/federation/credentials") {
        return true;
    }
    let last = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    // OAuth 2 and OpenID Connect token endpoints (`/token`, `/oauth/token`,
    // `/oauth2/v2.0/token`, `/protocol/openid-connect/token`, cloud metadata services'
    // `…/token`), GitHub's `/login/oauth/access_token` and app installations'
    // `/access_tokens`, registries' token services (`auth.docker.io/token`, `ghcr.io/token`).
    if matches!(
        last,
        "token" | "access_token" | "access_tokens" | "oauth2token"
    ) {
        return true;
    }
    // npm: `npm login` (CouchDB user document) and the web login's final step.
    path.starts_with("/-/user/org.couchdb.user:") || path == "/-/v1/done"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_endpoints_of_the_common_issuers() {
        for (host, path) in [
            ("github.com", "/login/oauth/access_token"),
            ("api.github.com", "/app/installations/42/access_tokens"),
            ("oauth2.googleapis.com", "/token"),
            ("sts.amazonaws.com", "/"),
            ("sts.eu-west-1.amazonaws.com", "/?Action=AssumeRole"),
            ("login.microsoftonline.com", "/common/oauth2/v2.0/token"),
            (
                "auth.example.com",
                "/realms/x/protocol/openid-connect/token",
            ),
            ("registry.npmjs.org", "/-/user/org.couchdb.user:alice"),
            ("auth.docker.io", "/token"),
            ("ghcr.io", "/token"),
        ] {
            assert!(token_endpoint(host, path), "{host}{path}");
        }
        for (host, path) in [
            ("api.github.com", "/repos/x/y/contents/token.txt"),
            ("example.com", "/tokens/list"),
            ("sts.example.com", "/"),
            ("registry.npmjs.org", "/left-pad"),
        ] {
            assert!(!token_endpoint(host, path), "{host}{path}");
        }
    }

    #[test]
    fn only_a_successful_answer_issues() {
        assert!(Issuance::of("github.com", "/login/oauth/access_token", 200).token_endpoint);
        assert!(!Issuance::of("github.com", "/login/oauth/access_token", 401).token_endpoint);
    }
}
