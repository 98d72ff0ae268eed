//! Opening a store from a URL: `embedded:PATH`, `postgres://…`,
//! `redis://…`, `etcd://host:port[,host:port]`.

use std::sync::Arc;

use crate::admin::AdminError;
use sagaflow::store::Store;

/// The URL forms [`open_store`] understands, for error messages.
const FORMS: &str = "embedded:PATH, postgres://user@host:port/database, redis://host:port, \
                     etcd://host:port[,host:port]";

/// Opens the store at `url`:
///
/// | URL | store | cargo feature |
/// |---|---|---|
/// | `embedded:PATH` (the directory must exist) | `EmbeddedStore` | `embedded` |
/// | `postgres://…`, `postgresql://…` | `PostgresStore`, default table | `postgres` |
/// | `redis://…`, `rediss://…` | `RedisStore` | `redis` |
/// | `etcd://host:port[,host:port]` | `EtcdStore`, `http://` endpoints | `etcd` |
///
/// A URL of another form, or of a store this build leaves out, is
/// [`AdminError::StoreUrl`] saying which forms work.
pub async fn open_store(url: &str) -> Result<Arc<dyn Store>, AdminError> {
    let bad = |reason: String| AdminError::StoreUrl {
        url: url.to_owned(),
        reason,
    };
    let Some((scheme, rest)) = url.split_once(':') else {
        return Err(bad(format!("not a store URL; use one of {FORMS}")));
    };
    match scheme {
        "embedded" => open_embedded(url, rest),
        "postgres" | "postgresql" => open_postgres(url).await,
        "redis" | "rediss" => open_redis(url).await,
        "etcd" => open_etcd(url, rest).await,
        _ => Err(bad(format!(
            "unknown store kind `{scheme}`; use one of {FORMS}"
        ))),
    }
}

#[cfg_attr(
    all(
        feature = "embedded",
        feature = "postgres",
        feature = "redis",
        feature = "etcd"
    ),
    allow(dead_code)
)]
fn not_built(url: &str, feature: &str) -> AdminError {
    AdminError::StoreUrl {
        url: url.to_owned(),
        reason: format!(
            "this build has no `{feature}` store; rebuild with the cargo feature `{feature}`"
        ),
    }
}

#[cfg(feature = "embedded")]
fn open_embedded(url: &str, path: &str) -> Result<Arc<dyn Store>, AdminError> {
    let path = path.strip_prefix("//").unwrap_or(path);
    let bad = |reason: String| AdminError::StoreUrl {
        url: url.to_owned(),
        reason,
    };
    if path.is_empty() {
        return Err(bad(
            "no path: write embedded:PATH, e.g. embedded:./sagaflow.db".to_owned(),
        ));
    }
    // Opening creates a store where there is none: an operator's typo would
    // show an empty store instead of an error.
    let dir = std::path::Path::new(path);
    if !dir.is_dir() {
        return Err(bad(format!(
            "there is no embedded store at {path} (no such directory)"
        )));
    }
    Ok(Arc::new(sagaflow::EmbeddedStore::open(dir)?))
}

#[cfg(not(feature = "embedded"))]
fn open_embedded(url: &str, _: &str) -> Result<Arc<dyn Store>, AdminError> {
    Err(not_built(url, "embedded"))
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, AdminError> {
    Ok(Arc::new(sagaflow::PostgresStore::connect(url).await?))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(url: &str) -> Result<Arc<dyn Store>, AdminError> {
    Err(not_built(url, "postgres"))
}

#[cfg(feature = "redis")]
async fn open_redis(url: &str) -> Result<Arc<dyn Store>, AdminError> {
    Ok(Arc::new(sagaflow::RedisStore::connect(url).await?))
}

#[cfg(not(feature = "redis"))]
async fn open_redis(url: &str) -> Result<Arc<dyn Store>, AdminError> {
    Err(not_built(url, "redis"))
}

/// `etcd://a:2379,b:2379` → `["http://a:2379", "http://b:2379"]`.
fn etcd_endpoints(url: &str, rest: &str) -> Result<Vec<String>, AdminError> {
    let hosts = rest
        .strip_prefix("//")
        .unwrap_or(rest)
        .trim_end_matches('/');
    let endpoints: Vec<String> = hosts
        .split(',')
        .map(str::trim)
        .filter(|host| !host.is_empty())
        .map(|host| format!("http://{host}"))
        .collect();
    if endpoints.is_empty() || hosts.contains('/') {
        return Err(AdminError::StoreUrl {
            url: url.to_owned(),
            reason: "write etcd://host:port, or several members as etcd://host:port,host:port"
                .to_owned(),
        });
    }
    Ok(endpoints)
}

#[cfg(feature = "etcd")]
async fn open_etcd(url: &str, rest: &str) -> Result<Arc<dyn Store>, AdminError> {
    let endpoints = etcd_endpoints(url, rest)?;
    Ok(Arc::new(sagaflow::EtcdStore::connect(&endpoints).await?))
}

#[cfg(not(feature = "etcd"))]
async fn open_etcd(url: &str, rest: &str) -> Result<Arc<dyn Store>, AdminError> {
    etcd_endpoints(url, rest)?;
    Err(not_built(url, "etcd"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_urls_list_http_endpoints() {
        assert_eq!(
            etcd_endpoints("etcd://a:1,b:2", "//a:1,b:2").unwrap(),
            ["http://a:1", "http://b:2"]
        );
        assert!(etcd_endpoints("etcd://", "//").is_err());
        assert!(etcd_endpoints("etcd://a:1/x", "//a:1/x").is_err());
    }

    #[tokio::test]
    async fn unknown_schemes_say_which_forms_work() {
        let error = open_store("mysql://x").await.err().unwrap().to_string();
        assert!(error.contains("unknown store kind `mysql`"), "{error}");
        assert!(error.contains("embedded:PATH"), "{error}");
        let error = open_store("nonsense").await.err().unwrap().to_string();
        assert!(error.contains("not a store URL"), "{error}");
    }
}
