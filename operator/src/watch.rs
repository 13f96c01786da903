//! Where the operator works ([`Scope`]: every namespace, or a list), and the watches of one kind over
//! that scope merged into one cache ([`reflect`]).
//!
//! Limited to some namespaces, the operator needs one watch per namespace and kind: its Roles grant
//! nothing cluster-wide, so no single watch covers them. Its one controller still needs one store of
//! Predictors, and `reconcile` one store per child kind. kube-runtime's reflector cannot share a store
//! between watches: every relist (at start, and whenever a watch fell too far behind) replaces the
//! whole store, so one namespace's relist would drop every other namespace's objects. [`reflect`]
//! keeps one store per kind and replaces, on a namespace's relist, that namespace's objects only.

use futures::{Stream, StreamExt, stream};
use kube::runtime::reflector::Store;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};

/// The namespaces the operator watches and acts in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace: one cluster-wide watch per kind (config/rbac's ClusterRoleBinding).
    Cluster,
    /// Only these namespaces (sorted, without repeats): one watch per namespace and kind, which
    /// RoleBindings in these namespaces allow (config/components/namespaced).
    Namespaces(Vec<String>),
}

impl Scope {
    /// `names` as a scope: none means every namespace. Repeats are dropped; a name that is not a
    /// namespace name (DNS-1123 label) is refused with the reason.
    pub fn new<I: IntoIterator<Item = String>>(names: I) -> Result<Self, String> {
        let mut names: Vec<String> = names.into_iter().map(|n| n.trim().to_string()).collect();
        if let Some(bad) = names.iter().find_map(|n| namespace_name(n).err()) {
            return Err(bad);
        }
        names.sort();
        names.dedup();
        Ok(if names.is_empty() {
            Self::Cluster
        } else {
            Self::Namespaces(names)
        })
    }

    /// One Api per watch of this scope, with the namespace it covers (`None`: all of them).
    pub fn apis<K>(&self, client: &Client) -> Vec<(Option<String>, Api<K>)>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>,
    {
        match self {
            Self::Cluster => vec![(None, Api::all(client.clone()))],
            Self::Namespaces(names) => names
                .iter()
                .map(|ns| (Some(ns.clone()), Api::namespaced(client.clone(), ns)))
                .collect(),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cluster => f.write_str("all namespaces"),
            Self::Namespaces(names) => write!(f, "namespaces {}", names.join(",")),
        }
    }
}

/// `name` if it can name a namespace (a DNS-1123 label, as the apiserver requires), else why not.
pub fn namespace_name(name: &str) -> Result<String, String> {
    let valid = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    if valid {
        Ok(name.to_string())
    } else {
        Err(format!(
            "{name:?} is not a namespace name (1-63 lowercase letters, digits and '-', starting and ending with a letter or digit)"
        ))
    }
}

/// Keeps `writer`'s store equal to the union of `watches` (each the watch of one namespace, `None`
/// for all of them) and yields their events as one stream, each only once its object is in the
/// store (a reconcile triggered by an event always finds its object).
///
/// A namespace's relist replaces that namespace's objects only: the store is rebuilt from the other
/// namespaces' objects as they are and the new list, in one swap. The store is ready once any watch
/// has listed. A watch's error is logged with its namespace and not passed on: the failing watch
/// backs off by itself (give each watch its backoff), and the others go on meanwhile.
pub fn reflect<K, S>(
    writer: Writer<K>,
    watches: Vec<(Option<String>, S)>,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    S: Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static,
{
    let (namespaces, streams): (Vec<_>, Vec<_>) = watches.into_iter().unzip();
    let mut union = Union {
        store: writer.as_reader(),
        writer,
        relists: vec![None; namespaces.len()],
        namespaces,
    };
    stream::select_all(
        streams
            .into_iter()
            .enumerate()
            .map(|(i, s)| s.map(move |event| (i, event)).boxed()),
    )
    .flat_map(move |(i, event)| stream::iter(union.apply(i, event)))
}

/// The state of [`reflect`].
struct Union<K: Resource<DynamicType = ()> + Clone + 'static> {
    writer: Writer<K>,
    store: Store<K>,
    /// Per watch: its namespace (`None`: all).
    namespaces: Vec<Option<String>>,
    /// Per watch: the objects of the relist it is in the middle of.
    relists: Vec<Option<Vec<K>>>,
}

impl<K: Resource<DynamicType = ()> + Clone + 'static> Union<K> {
    /// Applies event `event` of watch `i` to the store; returns what to pass on.
    fn apply(
        &mut self,
        i: usize,
        event: Result<Event<K>, watcher::Error>,
    ) -> Vec<Result<Event<K>, watcher::Error>> {
        match event {
            Err(error) => {
                let namespace = self.namespaces[i].as_deref().unwrap_or("all namespaces");
                tracing::warn!(kind = %<K as Resource>::kind(&()), namespace, %error, "watch failed; retrying with backoff");
                Vec::new()
            }
            Ok(Event::Init) => {
                self.relists[i] = Some(Vec::new());
                Vec::new()
            }
            Ok(Event::InitApply(object)) => {
                self.relists[i].get_or_insert_default().push(object);
                Vec::new()
            }
            Ok(Event::InitDone) => {
                let listed = self.relists[i].take().unwrap_or_default();
                let namespace = self.namespaces[i].as_deref();
                let others: Vec<K> = self
                    .store
                    .state()
                    .into_iter()
                    .filter(|o| {
                        namespace.is_some_and(|ns| o.meta().namespace.as_deref() != Some(ns))
                    })
                    .map(|o| (*o).clone())
                    .collect();
                self.writer.apply_watcher_event(&Event::Init);
                for object in others.into_iter().chain(listed.iter().cloned()) {
                    self.writer.apply_watcher_event(&Event::InitApply(object));
                }
                self.writer.apply_watcher_event(&Event::InitDone);
                std::iter::once(Event::Init)
                    .chain(listed.into_iter().map(Event::InitApply))
                    .chain(std::iter::once(Event::InitDone))
                    .map(Ok)
                    .collect()
            }
            Ok(event @ (Event::Apply(_) | Event::Delete(_))) => {
                self.writer.apply_watcher_event(&event);
                vec![Ok(event)]
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::ResourceExt;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector::{self, ObjectRef};

    fn object(ns: &str, name: &str, version: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(ns.into()),
                resource_version: Some(version.into()),
                ..ObjectMeta::default()
            },
            ..ConfigMap::default()
        }
    }

    fn contents(store: &Store<ConfigMap>) -> Vec<String> {
        let mut all: Vec<String> = store
            .state()
            .iter()
            .map(|o| {
                format!(
                    "{}/{}@{}",
                    o.namespace().unwrap(),
                    o.name_any(),
                    o.resource_version().unwrap()
                )
            })
            .collect();
        all.sort();
        all
    }

    type Events = futures::channel::mpsc::UnboundedSender<Result<Event<ConfigMap>, watcher::Error>>;

    /// A store fed by `reflect` from one hand-driven watch per namespace in `namespaces`.
    fn union(
        namespaces: &[Option<&str>],
    ) -> (
        Store<ConfigMap>,
        Vec<Events>,
        impl Stream<Item = Result<Event<ConfigMap>, watcher::Error>>,
    ) {
        let (store, writer) = reflector::store();
        let (senders, watches): (Vec<_>, Vec<_>) = namespaces
            .iter()
            .map(|ns| {
                let (tx, rx) = futures::channel::mpsc::unbounded();
                (tx, (ns.map(String::from), rx))
            })
            .unzip();
        (store, senders, reflect(writer, watches))
    }

    fn list(tx: &Events, objects: &[ConfigMap]) {
        tx.unbounded_send(Ok(Event::Init)).unwrap();
        for o in objects {
            tx.unbounded_send(Ok(Event::InitApply(o.clone()))).unwrap();
        }
        tx.unbounded_send(Ok(Event::InitDone)).unwrap();
    }

    /// Polls `events` until it has nothing ready; what it yielded, as names (`-` for a non-object event).
    fn drain(
        events: &mut (impl Stream<Item = Result<Event<ConfigMap>, watcher::Error>> + Unpin),
    ) -> Vec<String> {
        let mut seen = Vec::new();
        while let Some(Some(event)) = events.next().now_or_never() {
            seen.push(match event.unwrap() {
                Event::Apply(o) | Event::InitApply(o) => format!("+{}", o.name_any()),
                Event::Delete(o) => format!("-{}", o.name_any()),
                Event::Init | Event::InitDone => "|".into(),
            });
        }
        seen
    }

    use futures::FutureExt;

    #[tokio::test]
    async fn a_relist_of_one_namespace_replaces_only_its_objects() {
        let (store, tx, events) = union(&[Some("team-a"), Some("team-b")]);
        let mut events = Box::pin(events);
        list(
            &tx[0],
            &[object("team-a", "a1", "1"), object("team-a", "a2", "1")],
        );
        list(&tx[1], &[object("team-b", "b1", "1")]);
        drain(&mut events);
        assert_eq!(
            contents(&store),
            ["team-a/a1@1", "team-a/a2@1", "team-b/b1@1"]
        );

        // team-a relists after a gap: a2 was deleted, a1 changed. team-b's object stays, and a change
        // of team-b that arrives in the middle of team-a's relist is kept too.
        tx[0].unbounded_send(Ok(Event::Init)).unwrap();
        tx[0]
            .unbounded_send(Ok(Event::InitApply(object("team-a", "a1", "2"))))
            .unwrap();
        drain(&mut events);
        tx[1]
            .unbounded_send(Ok(Event::Apply(object("team-b", "b1", "2"))))
            .unwrap();
        drain(&mut events);
        tx[0].unbounded_send(Ok(Event::InitDone)).unwrap();
        drain(&mut events);
        assert_eq!(contents(&store), ["team-a/a1@2", "team-b/b1@2"]);

        tx[1]
            .unbounded_send(Ok(Event::Delete(object("team-b", "b1", "2"))))
            .unwrap();
        drain(&mut events);
        assert_eq!(contents(&store), ["team-a/a1@2"]);
    }

    #[tokio::test]
    async fn every_event_is_passed_on_after_its_object_is_in_the_store() {
        let (store, tx, events) = union(&[Some("team-a"), Some("team-b")]);
        list(&tx[1], &[object("team-b", "b1", "1")]);
        list(&tx[0], &[object("team-a", "a1", "1")]);
        tx[0]
            .unbounded_send(Ok(Event::Apply(object("team-a", "a2", "1"))))
            .unwrap();
        drop(tx);
        let seen: Vec<String> = events
            .map(|event| {
                let event = event.unwrap();
                if let Event::InitApply(o) | Event::Apply(o) = &event {
                    assert!(
                        store.get(&ObjectRef::from_obj(o)).is_some(),
                        "{} passed on before it was stored",
                        o.name_any()
                    );
                }
                format!("{event:?}").split('(').next().unwrap().to_string()
            })
            .collect()
            .await;
        // Both lists (Init, the object, InitDone each) and the change, in the watches' order.
        assert_eq!(seen.len(), 7, "{seen:?}");
        assert_eq!(
            contents(&store),
            ["team-a/a1@1", "team-a/a2@1", "team-b/b1@1"]
        );
    }

    #[tokio::test]
    async fn the_store_is_ready_after_a_list_and_a_failed_watch_stops_nothing_else() {
        let (store, tx, events) = union(&[Some("team-a"), Some("team-b")]);
        let mut events = Box::pin(events);
        tx[0]
            .unbounded_send(Err(watcher::Error::NoResourceVersion))
            .unwrap();
        assert_eq!(
            drain(&mut events),
            Vec::<String>::new(),
            "errors are not passed on"
        );
        assert!(store.wait_until_ready().now_or_never().is_none());
        list(&tx[1], &[object("team-b", "b1", "1")]);
        assert_eq!(drain(&mut events), ["|", "+b1", "|"]);
        assert!(store.wait_until_ready().now_or_never().is_some());
        assert_eq!(contents(&store), ["team-b/b1@1"]);
    }

    #[tokio::test]
    async fn one_cluster_wide_watch_is_a_plain_reflector() {
        let (store, tx, events) = union(&[None]);
        let mut events = Box::pin(events);
        list(
            &tx[0],
            &[object("team-a", "a1", "1"), object("team-b", "b1", "1")],
        );
        assert_eq!(drain(&mut events), ["|", "+a1", "+b1", "|"]);
        // A relist replaces everything: b1 is gone.
        list(&tx[0], &[object("team-a", "a1", "1")]);
        drain(&mut events);
        assert_eq!(contents(&store), ["team-a/a1@1"]);
    }

    #[test]
    fn scope_from_names() {
        assert_eq!(Scope::new(Vec::<String>::new()), Ok(Scope::Cluster));
        assert_eq!(
            Scope::new(["team-b", "team-a", "team-b"].map(String::from)),
            Ok(Scope::Namespaces(vec!["team-a".into(), "team-b".into()]))
        );
        for bad in ["", "Team-A", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            let err = Scope::new([bad.to_string()]).unwrap_err();
            assert!(err.contains("is not a namespace name"), "{bad}: {err}");
        }
        assert_eq!(
            Scope::Namespaces(vec!["team-a".into(), "team-b".into()]).to_string(),
            "namespaces team-a,team-b"
        );
    }
}
