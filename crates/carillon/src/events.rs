//! The event file (`[events] file`): switch events appended as JSON lines
//! by a thread of their own, so the signalling thread never waits on the
//! disk. The switch hands records over a bounded channel; when it is full
//! (the disk is stalled) records are dropped and counted, never queued
//! without bound. Each burst of records is flushed as soon as the channel
//! is empty, so a reader (the end-to-end tests) sees them promptly.
//!
//! It also owns the [`EventHub`]: the in-process fan-out of the same
//! records to live consumers (the management API's WebSocket stream, the
//! AMI interface). Publishing never waits: a consumer that falls more than
//! [`HUB_CAPACITY`] records behind is told it lagged and cut off by its
//! owner, and the switch is never slowed by it.

use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

use carillon_events::EventRecord;
use tracing::warn;

/// Records the channel holds before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// Records a live consumer may fall behind before it lags.
pub const HUB_CAPACITY: usize = 4 * 1024;

/// Live fan-out of switch events (see the module doc).
#[derive(Clone)]
pub struct EventHub {
    tx: tokio::sync::broadcast::Sender<Arc<EventRecord>>,
}

impl Default for EventHub {
    fn default() -> Self {
        EventHub::new(HUB_CAPACITY)
    }
}

impl EventHub {
    /// A hub whose consumers may lag `capacity` records before losing some.
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = tokio::sync::broadcast::channel(capacity.max(1));
        EventHub { tx }
    }

    /// A new consumer, seeing records published from now on.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<Arc<EventRecord>> {
        self.tx.subscribe()
    }

    /// Hands `record` to every consumer; never waits. Without consumers it
    /// is dropped.
    pub fn publish(&self, record: Arc<EventRecord>) {
        let _ = self.tx.send(record);
    }

    /// Consumers subscribed now (for the management API's metrics).
    #[allow(dead_code)]
    pub fn consumers(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// Errors opening the event file.
#[derive(Debug, thiserror::Error)]
#[error("event file {path}: {source}")]
pub struct EventFileError {
    path: PathBuf,
    source: std::io::Error,
}

/// The switch's end of the event file.
pub struct EventSink {
    tx: SyncSender<Arc<EventRecord>>,
    dropped: Arc<AtomicU64>,
}

impl EventSink {
    /// Queues `record`; drops (and counts) it when the writer is behind.
    pub fn submit(&self, record: Arc<EventRecord>) {
        match self.tx.try_send(record) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!("event file writer is behind: switch events dropped");
                }
            }
        }
    }
}

/// The writer thread; ends once every [`EventSink`] is gone.
pub struct EventWriter {
    thread: JoinHandle<()>,
    dropped: Arc<AtomicU64>,
}

impl EventWriter {
    /// Opens `path` for appending (created if missing) and starts the
    /// writer thread.
    pub fn start(path: &Path) -> Result<(EventSink, EventWriter), EventFileError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| EventFileError {
                path: path.to_owned(),
                source,
            })?;
        let (tx, rx) = sync_channel(QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("carillon-events".into())
            .spawn(move || write_loop(rx, BufWriter::new(file), &shown))
            .map_err(|source| EventFileError {
                path: path.to_owned(),
                source,
            })?;
        Ok((
            EventSink {
                tx,
                dropped: Arc::clone(&dropped),
            },
            EventWriter { thread, dropped },
        ))
    }

    /// The count of records dropped so far (for metrics).
    pub fn dropped_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.dropped)
    }

    /// Waits for the thread to write what was queued; the number of
    /// records dropped.
    pub fn finish(self) -> u64 {
        let _ = self.thread.join();
        self.dropped.load(Ordering::Relaxed)
    }
}

fn write_loop(rx: Receiver<Arc<EventRecord>>, mut out: BufWriter<std::fs::File>, path: &str) {
    // Warn on the first failed write or flush only.
    let mut failed = false;
    let mut check = |result: std::io::Result<()>| {
        if let Err(e) = result {
            if !failed {
                warn!(file = %path, error = %e, "event file not written");
                failed = true;
            }
        }
    };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(record) = next {
            let mut line = record.to_json();
            line.push('\n');
            check(out.write_all(line.as_bytes()));
            next = rx.try_recv().ok();
        }
        check(out.flush());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use carillon_events::SwitchEvent;

    #[test]
    fn records_are_appended_as_json_lines_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.jsonl");
        std::fs::write(&path, "").unwrap();
        let (sink, writer) = EventWriter::start(&path).unwrap();
        for i in 0..3u64 {
            sink.submit(Arc::new(EventRecord {
                time_ms: i,
                event: SwitchEvent::Bridged {
                    linkedid: "l".into(),
                    channels: ["SIP/a-1".into(), "SIP/b-1".into()],
                },
            }));
        }
        drop(sink);
        assert_eq!(writer.finish(), 0);
        let text = std::fs::read_to_string(&path).unwrap();
        let records: Vec<EventRecord> = text
            .lines()
            .map(|l| EventRecord::from_json(l).unwrap())
            .collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[2].time_ms, 2);
    }

    #[test]
    fn a_hub_gives_each_consumer_every_record_and_a_slow_one_lags_without_blocking() {
        let hub = EventHub::new(2);
        let mut fast = hub.subscribe();
        let mut slow = hub.subscribe();
        assert_eq!(hub.consumers(), 2);
        let record = |i| {
            Arc::new(EventRecord {
                time_ms: i,
                event: SwitchEvent::Bridged {
                    linkedid: "l".into(),
                    channels: ["SIP/a-1".into(), "SIP/b-1".into()],
                },
            })
        };
        hub.publish(record(0));
        assert_eq!(fast.try_recv().unwrap().time_ms, 0);
        for i in 1..5 {
            hub.publish(record(i));
            assert_eq!(fast.try_recv().unwrap().time_ms, i);
        }
        // The slow consumer missed records; publishing never waited for it.
        assert!(matches!(
            slow.try_recv(),
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_))
        ));
        assert_eq!(slow.try_recv().unwrap().time_ms, 3);
    }

    #[test]
    fn an_unwritable_path_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = EventWriter::start(&dir.path().join("missing/dir/events.jsonl"));
        assert!(err.is_err());
    }
}
