//! A wiremock server on loopback standing in for an outside service (a
//! language model's API, Context7, a package host), with a runtime of its
//! own so the tests that use it stay plain synchronous code.

use wiremock::{Mock, MockServer, Request};

pub struct FakeServer {
    rt: tokio::runtime::Runtime,
    server: MockServer,
}

impl FakeServer {
    pub fn start() -> FakeServer {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let server = rt.block_on(MockServer::start());
        FakeServer { rt, server }
    }

    pub fn mount(&self, mock: Mock) {
        self.rt.block_on(mock.mount(&self.server));
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.rt
            .block_on(self.server.received_requests())
            .unwrap_or_default()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn uri(&self) -> String {
        self.server.uri()
    }

    pub fn port(&self) -> u16 {
        self.server.address().port()
    }
}
