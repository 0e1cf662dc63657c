//! The checklist as text for people and as JSON for scripts.

use serde_json::{Value, json};

use super::checks::{Check, Status, healthy};

/// What one doctor run found.
#[derive(Clone, Debug)]
pub struct Report {
    pub namespace: String,
    pub service: String,
    /// `namespace/name` of the pod the network probes ran from.
    pub probed_from: Option<String>,
    /// A sentence about where the probes ran (or why they did not).
    pub probe_note: String,
    pub checks: Vec<Check>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        healthy(&self.checks)
    }

    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// `{service, namespace, checks: [{name, status, message, hint}], healthy}` and where the
    /// probes ran from.
    pub fn json(&self) -> Value {
        json!({
            "service": self.service,
            "namespace": self.namespace,
            "probedFrom": self.probed_from,
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name,
                "status": c.status.as_str(),
                "message": c.message,
                "hint": c.hint,
            })).collect::<Vec<_>>(),
            "healthy": self.healthy(),
        })
    }

    pub fn text(&self) -> String {
        let mut out = format!("Service {}/{}\n", self.namespace, self.service);
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        for c in &self.checks {
            let mark = match c.status {
                Status::Pass => "[ ok ]",
                Status::Warn => "[warn]",
                Status::Fail => "[FAIL]",
                Status::Skipped => "[skip]",
            };
            out.push_str(&format!("{mark} {:width$}  {}\n", c.name, c.message));
            if let Some(h) = &c.hint
                && c.status != Status::Pass
            {
                out.push_str(&format!("       {:width$}  -> {h}\n", ""));
            }
        }
        if !self.probe_note.is_empty() {
            out.push_str(&format!("{}\n", self.probe_note));
        }
        let ping = self.checks.iter().find(|c| c.name == "cluster-ip" && c.status == Status::Pass);
        if let Some(h) = ping.and_then(|c| c.hint.as_ref()) {
            out.push_str(&format!("Note: {h}\n"));
        }
        let verdict = if self.healthy() { "healthy" } else { "NOT healthy" };
        out.push_str(&format!(
            "{} passed, {} failed, {} warning(s), {} skipped: {}/{} is {verdict}.\n",
            self.count(Status::Pass),
            self.count(Status::Fail),
            self.count(Status::Warn),
            self.count(Status::Skipped),
            self.namespace,
            self.service
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(checks: Vec<Check>) -> Report {
        Report {
            namespace: "default".into(),
            service: "web".into(),
            probed_from: Some("default/curl".into()),
            probe_note: String::new(),
            checks,
        }
    }

    #[test]
    fn one_failure_makes_the_verdict_unhealthy_and_warnings_do_not() {
        let warn = Check::new("target-port", Status::Warn, "w").hint("h");
        let r = report(vec![Check::new("service", Status::Pass, "ok"), warn.clone()]);
        assert!(r.healthy());
        assert_eq!(r.json()["healthy"], true);
        let r = report(vec![warn, Check::new("dns", Status::Fail, "no").hint("fix it")]);
        assert!(!r.healthy());
        let j = r.json();
        assert_eq!(j["healthy"], false);
        assert_eq!(j["checks"][1], json!({"name": "dns", "status": "fail", "message": "no", "hint": "fix it"}));
        let text = r.text();
        assert!(text.contains("[FAIL] dns") && text.contains("-> fix it"), "{text}");
        assert!(text.ends_with("0 passed, 1 failed, 1 warning(s), 0 skipped: default/web is NOT healthy.\n"), "{text}");
    }
}
