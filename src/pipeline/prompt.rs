//! The prompt tap: a request to an LLM API is read whole (up to `max_scan_bytes`) and its
//! credentials replaced in the JSON before it goes on (`detect.llm_prompt_secrets: redact`).
//! A larger prompt passes unchanged to the ordinary scan behind this tap, which then decides
//! as for any request (fail closed: `outbound_secrets`).

use std::sync::Arc;

use bytes::Bytes;

use super::body::{BoxError, Outlet, Tap};
use super::decide;
use super::tracker::FlowTracker;
use crate::detect::Detector;
use crate::detect::prompt::redact_prompt;

pub struct PromptRedaction {
    detector: Arc<Detector>,
    tracker: Arc<FlowTracker>,
    held: Vec<u8>,
    limit: usize,
    /// Past the limit: the prompt passes as it is.
    passing: bool,
}

impl PromptRedaction {
    pub fn new(detector: Arc<Detector>, tracker: Arc<FlowTracker>, limit: usize) -> Self {
        PromptRedaction {
            detector,
            tracker,
            held: Vec::new(),
            limit,
            passing: false,
        }
    }
}

impl Tap for PromptRedaction {
    fn on_data(&mut self, data: Bytes, out: &mut Outlet) {
        if self.passing {
            out.push(data);
            return;
        }
        self.held.extend_from_slice(&data);
        if self.held.len() > self.limit {
            self.passing = true;
            out.push(Bytes::from(std::mem::take(&mut self.held)));
        }
    }

    fn on_end(&mut self, out: &mut Outlet) {
        if self.passing {
            return;
        }
        let body = std::mem::take(&mut self.held);
        match redact_prompt(&self.detector, &body) {
            Some(redacted) => {
                decide::findings(&self.detector, &self.tracker, &redacted.detections);
                out.push(Bytes::from(redacted.body));
            }
            None => out.push(Bytes::from(body)),
        }
    }

    fn on_error(&mut self, _error: &BoxError, _out: &mut Outlet) {
        // The request broke off: what was held (unscanned) goes nowhere.
        self.held.clear();
    }

    fn held(&self) -> usize {
        self.held.len()
    }

    fn keeps_length(&self) -> bool {
        false
    }

    fn ends_with_inner(&self) -> bool {
        false
    }
}
