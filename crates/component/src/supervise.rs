//! The components of one process run until the process is told to stop; if any of them ends
//! (an error, a panic, or returning at all) the process stops with an error naming it, so
//! `portico server` and `portico up` never run on with a part missing.

use std::future::Future;

use tokio::task::JoinSet;

use crate::informer::Informers;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{component} failed: {reason}")]
    Failed { component: String, reason: String },
    #[error("{component} stopped unexpectedly")]
    Stopped { component: String },
    #[error("{component} panicked: {reason}")]
    Panicked { component: String, reason: String },
}

/// A set of named, long-running components.
#[derive(Default)]
pub struct Supervisor {
    tasks: JoinSet<(String, Result<(), String>)>,
    informers: Vec<Informers>,
    /// For naming a component that panicked (its result carries no name).
    names: std::collections::HashMap<tokio::task::Id, String>,
}

impl Supervisor {
    pub fn new() -> Supervisor {
        Supervisor::default()
    }

    /// Runs `component` until the process stops; its end is a failure of the process.
    pub fn spawn<E: std::fmt::Display>(
        &mut self,
        name: impl Into<String>,
        component: impl Future<Output = Result<(), E>> + Send + 'static,
    ) {
        let name = name.into();
        let task_name = name.clone();
        let handle = self.tasks.spawn(async move { (task_name, component.await.map_err(|e| e.to_string())) });
        self.names.insert(handle.id(), name);
    }

    /// Also fails when a watch of these informers fails for good (the API refuses them).
    pub fn watch_informers(&mut self, informers: &Informers) {
        self.informers.push(informers.clone());
    }

    /// Waits until a component ends (an error) or `shutdown` resolves (Ok).
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()>) -> Result<(), Error> {
        let informers = std::mem::take(&mut self.informers);
        let informer_failure = async {
            if informers.is_empty() {
                return std::future::pending().await;
            }
            let failures = informers.iter().map(|i| Box::pin(i.failed()));
            futures::future::select_all(failures).await.0
        };
        let result = tokio::select! {
            _ = shutdown => Ok(()),
            reason = informer_failure => Err(Error::Failed { component: "informers".into(), reason }),
            Some(ended) = self.tasks.join_next(), if !self.tasks.is_empty() => Err(match ended {
                Ok((component, Ok(()))) => Error::Stopped { component },
                Ok((component, Err(reason))) => Error::Failed { component, reason },
                Err(e) => {
                    let component = self.task_name(&e);
                    Error::Panicked { component, reason: panic_message(e) }
                }
            }),
        };
        self.tasks.abort_all();
        result
    }

    fn task_name(&self, e: &tokio::task::JoinError) -> String {
        self.names.get(&e.id()).cloned().unwrap_or_else(|| "a component".to_owned())
    }
}

fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_owned()),
        Err(e) => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_failing_component_stops_the_supervisor_with_its_name() {
        let mut s = Supervisor::new();
        s.spawn("forever", async { std::future::pending::<Result<(), String>>().await });
        s.spawn("nodes", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Err::<(), _>("bad cluster CIDR")
        });
        let err = s.run_until(std::future::pending()).await.unwrap_err();
        assert_eq!(err.to_string(), "nodes failed: bad cluster CIDR");
    }

    #[tokio::test]
    async fn a_component_that_returns_is_a_failure_and_shutdown_is_not() {
        let mut s = Supervisor::new();
        s.spawn("dns", async { Ok::<(), String>(()) });
        assert_eq!(s.run_until(std::future::pending()).await.unwrap_err().to_string(), "dns stopped unexpectedly");
        let mut s = Supervisor::new();
        s.spawn("forever", async { std::future::pending::<Result<(), String>>().await });
        assert!(s.run_until(async {}).await.is_ok());
    }
}
