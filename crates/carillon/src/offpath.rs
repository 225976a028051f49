//! The switch's outputs that are handled off the signalling path and never
//! delay a call: callers' callback requests (`Output::Callback`) go to the
//! CDR writer, which stores them in `callback_requests` with the CDRs'
//! guarantees (batched, spooled while the database is down); webhooks
//! (`Output::Webhook`) go to the process's one [`WebhookSender`], whose
//! bounded queue drops (and counts) rather than waits.
//!
//! Owns only the two sinks handed to the driver; the writer and the sender
//! own their tasks.

use carillon_cdr::CallbackRequest;
use carillon_store::CdrWriterHandle;
use carillon_webhook::{WebhookRequest, WebhookSender};

/// The sink for callback requests: queued on the CDR writer.
pub fn callback_sink(cdrs: CdrWriterHandle) -> Box<dyn FnMut(CallbackRequest) + Send> {
    Box::new(move |request| cdrs.submit_callback(request))
}

/// The sink for webhooks: queued on the sender (dropped with a warning and
/// a count when its queue is full).
pub fn webhook_sink(webhooks: WebhookSender) -> Box<dyn FnMut(WebhookRequest) + Send> {
    Box::new(move |request| {
        webhooks.send(request);
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use carillon_store::{CallbackQuery, CdrWriter, Store, SystemClock};
    use carillon_webhook::WebhookConfig;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn request(uniqueid: &str) -> CallbackRequest {
        CallbackRequest {
            uniqueid: uniqueid.to_owned(),
            caller_num: "100".into(),
            number: "0551234567".into(),
            alt_number: Some("0667654321".into()),
            language: "ar".into(),
            requested_at: 1_765_000_000_000,
            context: Some("callcentre".into()),
            exten: Some("cb".into()),
        }
    }

    #[tokio::test]
    async fn a_callback_output_handed_to_the_sink_is_stored_as_pending() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let store = Store::connect(&url).await.unwrap();
        let writer = CdrWriter::spawn(store.clone(), dir.path().join("spool"), SystemClock);
        let mut sink = callback_sink(writer.clone());
        sink(request("u-1"));
        let report = writer.flush().await;
        assert_eq!((report.spooled, report.unsaved), (0, 0));
        let rows = store
            .fetch_callback_requests(&CallbackQuery::default())
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].status, "pending");
        assert_eq!(rows[0].request, request("u-1"));
    }

    #[tokio::test]
    async fn a_webhook_output_handed_to_the_sink_reaches_the_url() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/cb", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).ends_with("{\"n\":1}") {
                let n = stream.read(&mut buf).await.unwrap();
                assert!(n > 0, "connection closed early");
                got.extend_from_slice(&buf[..n]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        let sender = WebhookSender::spawn(WebhookConfig::default()).unwrap();
        let mut sink = webhook_sink(sender.clone());
        sink(WebhookRequest {
            url,
            body: "{\"n\":1}".into(),
            timeout: Duration::from_secs(2),
            retries: 0,
        });
        let got = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the webhook never arrived")
            .unwrap();
        assert!(got.starts_with("POST /cb HTTP/1.1\r\n"), "{got}");
        for _ in 0..100 {
            if sender.stats().delivered == 1 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("not counted as delivered: {:?}", sender.stats());
    }
}
