//! The agent's Prometheus metrics, under kubelet's names: `kubelet_running_pods`,
//! `kubelet_running_containers{container_state}`, `kubelet_pod_start_duration_seconds` and
//! `prober_probe_total{probe_type,result,container,pod,namespace}`. Running pods and containers
//! are counted from the container supervisors' records at scrape time.

use std::collections::HashSet;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::sandbox::Sandbox;

type Labels = Vec<(&'static str, String)>;

/// kubelet's buckets for pod start durations (seconds).
const START_BUCKETS: [f64; 25] = [
    0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 240.0, 300.0, 360.0, 480.0,
    600.0, 900.0, 1200.0, 1800.0, 2700.0, 3600.0,
];

pub struct Metrics {
    pub pod_start_duration: Histogram,
    pub probes: Family<Labels, Counter>,
}

impl Metrics {
    /// The metrics and the registry that exposes them (with the running-pod collector).
    pub fn new(sandbox: Sandbox) -> (Arc<Metrics>, Registry) {
        let m = Arc::new(Metrics { pod_start_duration: Histogram::new(START_BUCKETS), probes: Family::default() });
        let mut registry = Registry::default();
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Duration in seconds from the agent seeing a pod for the first time to the pod starting to run",
            m.pod_start_duration.clone(),
        );
        registry.register(
            "prober_probe",
            "Cumulative number of liveness, readiness and startup probes",
            m.probes.clone(),
        );
        registry.register_collector(Box::new(Running(sandbox)));
        (m, registry)
    }

    pub fn probe(&self, kind: &str, passed: bool, container: &str, pod: &str, namespace: &str) {
        let labels = vec![
            ("probe_type", kind.to_owned()),
            ("result", if passed { "successful" } else { "failed" }.to_owned()),
            ("container", container.to_owned()),
            ("pod", pod.to_owned()),
            ("namespace", namespace.to_owned()),
        ];
        self.probes.get_or_create(&labels).inc();
    }
}

#[derive(Debug)]
struct Running(Sandbox);

impl Collector for Running {
    fn encode(&self, mut encoder: DescriptorEncoder) -> std::fmt::Result {
        let states = self.0.list();
        let running: Vec<_> = states.iter().filter(|s| s.is_running() && s.shim_alive).collect();
        let exited = states.iter().filter(|s| s.has_ended()).count();
        let pods: HashSet<&str> = running.iter().map(|s| s.id.split('_').next().unwrap_or_default()).collect();
        let mut m = encoder.encode_descriptor(
            "kubelet_running_pods",
            "Number of pods that have a running container",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(pods.len() as i64).encode(m.encode_family(&Vec::<(&str, String)>::new())?)?;
        let mut m = encoder.encode_descriptor(
            "kubelet_running_containers",
            "Number of containers currently running",
            None,
            MetricType::Gauge,
        )?;
        for (state, n) in [("running", running.len()), ("exited", exited)] {
            ConstGauge::new(n as i64).encode(m.encode_family(&vec![("container_state", state.to_owned())])?)?;
        }
        Ok(())
    }
}
