//! Routes (SPEC 8): which route applies to a host, and whether its path list lets a path
//! through. Injecting the credential is the pipeline's (after scanning).

use super::Verdict;
use crate::config::Config;
use crate::config::policy::RouteSetting;

/// The route for `host`, if one applies.
pub fn route_for<'a>(config: &'a Config, host: &str) -> Option<&'a RouteSetting> {
    config.routes.iter().find(|r| r.hosts.matches(host))
}

/// A route's path list: `None` when the path may go.
pub fn route_path_verdict(route: &RouteSetting, path: &str) -> Option<Verdict> {
    let allow = route.allow_paths.as_ref()?;
    if allow.is_match(path) {
        return None;
    }
    Some(Verdict::Block {
        rule: format!("route:{}", route.host),
        reason: format!(
            "policy: {path} is not in the allow_paths of the route for {}",
            route.host
        ),
    })
}
