//! Waiting, always bounded: for a kube object to reach a state (`kube::runtime::wait::await_condition`
//! under `tokio::time::timeout`: a watch, not a poll), and for anything else a test must poll (a
//! process, a port, an HTTP endpoint). Each says what it waited for and what it saw when time ran out.

use std::fmt::Debug;
use std::time::Duration;

use kube::runtime::wait::await_condition;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;

/// A kube object a test can watch: what `await_condition` needs of it.
pub trait Watched: Resource + Clone + DeserializeOwned + Debug + Send + 'static {}
impl<K: Resource + Clone + DeserializeOwned + Debug + Send + 'static> Watched for K {}

/// Waits up to `within` until `cond` holds for object `name` (`None`: it does not exist). On timeout
/// or a failed watch: `Err` naming `what` and the object as it is then.
pub async fn until<K>(
    api: &Api<K>,
    name: &str,
    within: Duration,
    what: &str,
    cond: impl Fn(Option<&K>) -> bool,
) -> Result<Option<K>, String>
where
    K: Watched,
{
    let deadline = tokio::time::Instant::now() + within;
    let failure = loop {
        match tokio::time::timeout_at(deadline, await_condition(api.clone(), name, &cond)).await {
            Ok(Ok(object)) => return Ok(object),
            // NB: a watch ends at the first error (an apiserver restarting, a dropped connection):
            // start another, within the same deadline.
            Ok(Err(_)) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Err(error)) => break format!("the watch failed ({error})"),
            Err(_) => break format!("timed out after {within:?}"),
        }
    };
    let now = api.get_opt(name).await;
    Err(format!(
        "{failure} waiting for {what} on {name}; now: {now:#?}"
    ))
}

/// [`until`] `done` holds for the existing object `name`; returns it.
pub async fn object<K>(
    api: &Api<K>,
    name: &str,
    within: Duration,
    what: &str,
    done: impl Fn(&K) -> bool,
) -> Result<K, String>
where
    K: Watched,
{
    let found = until(api, name, within, what, |o: Option<&K>| {
        o.is_some_and(&done)
    })
    .await?;
    Ok(found.expect("the condition holds only for an object"))
}

/// [`until`] object `name` no longer exists.
pub async fn gone<K>(api: &Api<K>, name: &str, within: Duration) -> Result<(), String>
where
    K: Watched,
{
    until(api, name, within, "deletion", |o: Option<&K>| o.is_none())
        .await
        .map(drop)
}

/// The bounded poll for what is not a kube object (a process, a port, an HTTP endpoint).
pub use model_store::testing::poll;

/// Every replica of the Deployment's current template is updated and available: the operator's own
/// reading of a rollout ([`operator::status::rollout_of`]), so tests and status agree on "done".
pub fn rolled_out(d: &k8s_openapi::api::apps::v1::Deployment) -> bool {
    operator::status::rollout_of(Some(d)) == operator::status::Rollout::Complete
}
