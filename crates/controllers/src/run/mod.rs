//! The loops that feed the pure reconcilers from the process's shared informers and write
//! their results through the API. Controllers are API clients: they never touch the store.

mod endpoints;
pub mod nodes;
pub mod workloads;

pub use endpoints::{Options, run_service_endpoints};

use component::informer::{Event, Informer, Watched};
use tokio::sync::mpsc;

/// Forwards what each change of `informer` makes dirty to `tx`, from a task of its own.
pub(crate) fn follow<K: Watched, D: Send + 'static>(
    informer: &Informer<K>,
    tx: &mpsc::UnboundedSender<D>,
    mut on: impl FnMut(Event<K>) -> Vec<D> + Send + 'static,
) {
    let mut sub = informer.subscribe();
    let tx = tx.clone();
    tokio::spawn(async move {
        while let Some(ev) = sub.next().await {
            for d in on(ev) {
                if tx.send(d).is_err() {
                    return;
                }
            }
        }
    });
}
