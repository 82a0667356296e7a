//! A node's own threads: the one that joins the database and keeps the
//! lease, and the one that listens for other nodes' commits.

use std::sync::{Arc, Mutex, PoisonError, Weak, mpsc};
use std::time::Duration;

use tokio_postgres::{AsyncMessage, Config, NoTls};

use super::super::StoreError;
use super::conn::{Conn, cannot_connect, db, runtime};
use super::schema::{migrate, register};
use super::{JOURNAL_CHANNEL, Node};

/// Starts the thread that joins the database as a node (connecting,
/// applying migrations, registering `node` with a lease) and then renews
/// the lease every third of `lease`; returns once the node is registered.
/// The thread ends when the sender is dropped, giving the lease up and
/// saying so on the receiver.
pub(super) fn keep_lease(
    config: Config,
    node: Arc<Mutex<Node>>,
    lease: Duration,
) -> Result<(mpsc::Sender<()>, mpsc::Receiver<()>), StoreError> {
    let (tx, rx) = mpsc::channel::<()>();
    let (left_tx, left) = mpsc::sync_channel::<()>(1);
    let (joined_tx, joined) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("orchestr8-lease".into())
        .spawn(move || {
            let setup = Conn::open(&config).and_then(|mut conn| {
                migrate(&mut conn)?;
                let id = register(&mut conn, lease)?;
                Ok((conn, id))
            });
            let mut conn = match setup {
                Ok((conn, id)) => {
                    tracing::info!(node = %id, lease_ms = lease.as_millis() as u64, "joined as a node");
                    node.lock().unwrap_or_else(PoisonError::into_inner).id = id;
                    let _ = joined_tx.send(Ok(()));
                    conn
                }
                Err(e) => {
                    let _ = joined_tx.send(Err(e));
                    return;
                }
            };
            let lock = || node.lock().unwrap_or_else(PoisonError::into_inner);
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(lease / 3) {
                if conn.is_closed() {
                    match Conn::open(&config) {
                        Ok(c) => conn = c,
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot renew this node's lease");
                            continue;
                        }
                    }
                }
                let id = lock().id.clone();
                // Renewed, with how many other nodes are alive.
                let renewed = conn.query_opt(
                    "UPDATE nodes SET lease_until = now() + make_interval(secs => $2)
                     WHERE id = $1 AND lease_until > now()
                     RETURNING (SELECT count(*) FROM nodes WHERE id <> $1 AND lease_until > now())",
                    &[&id, &lease.as_secs_f64()],
                );
                match renewed {
                    Ok(Some(row)) => lock().peers = row.get::<_, i64>(0) > 0,
                    Ok(None) => {
                        let fresh = match register(&mut conn, lease) {
                            Ok(fresh) => fresh,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot join again as a node");
                                continue;
                            }
                        };
                        let mut node = lock();
                        let lost: Vec<String> = node.owned.drain().map(|(id, _)| id).collect();
                        tracing::error!(
                            node = %id,
                            new_node = %fresh,
                            lease_ms = lease.as_millis() as u64,
                            lost = ?lost,
                            "this node's lease expired (it was paused or cut off from the database longer than its lease): its executions are taken over by other nodes and its writes to them are refused; it goes on as a new node"
                        );
                        node.lost.extend(lost);
                        node.id = fresh;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew this node's lease"),
                }
            }
            // Leaving: give the lease up, so other nodes take over whatever
            // is left at once rather than when it would have expired.
            let id = lock().id.clone();
            if let Err(e) = conn.query("DELETE FROM nodes WHERE id = $1", &[&id]) {
                tracing::debug!(error = %e, "could not give the lease up");
            }
            let _ = left_tx.send(());
        })
        .map_err(|e| StoreError::Database(format!("cannot start the lease thread: {e}")))?;
    joined
        .recv()
        .map_err(|_| StoreError::Database("the lease thread stopped".into()))??;
    Ok((tx, left))
}

/// How often the listener looks whether its store is still there.
const LOOK: Duration = Duration::from_millis(500);

/// The listener's thread: on a connection of its own, `LISTEN`s to the
/// journal channel and calls `committed` for each execution another node
/// appended to, until the store (its `node`) is gone; connects again when
/// the connection breaks.
pub(super) fn listen(config: &Config, node: &Weak<Mutex<Node>>, committed: &dyn Fn(&str)) {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for other nodes' commits");
            return;
        }
    };
    while node.strong_count() > 0 {
        if let Err(e) = runtime.block_on(listen_on_one_connection(config, node, committed)) {
            tracing::warn!(error = %e, "cannot listen for other nodes' commits");
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Listens on one connection until the store is gone (`Ok`) or the
/// connection breaks.
async fn listen_on_one_connection(
    config: &Config,
    node: &Weak<Mutex<Node>>,
    committed: &dyn Fn(&str),
) -> Result<(), StoreError> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(cannot_connect)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // Drives the connection, handing its notifications over.
    let driver = tokio::spawn(async move {
        while let Some(Ok(message)) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            if let AsyncMessage::Notification(n) = message
                && tx.send(n).is_err()
            {
                break;
            }
        }
    });
    let listened = client
        .batch_execute(&format!("LISTEN {JOURNAL_CHANNEL}"))
        .await
        .map_err(db);
    let outcome = match listened {
        Ok(()) => loop {
            let Some(me) = node
                .upgrade()
                .map(|n| n.lock().unwrap_or_else(PoisonError::into_inner).id.clone())
            else {
                break Ok(());
            };
            match tokio::time::timeout(LOOK, rx.recv()).await {
                Ok(Some(n)) => match n.payload().split_once(' ') {
                    Some((from, id)) if from != me => committed(id),
                    _ => {}
                },
                Ok(None) => {
                    break Err(StoreError::Database("lost the listening connection".into()));
                }
                Err(_) => {}
            }
        },
        Err(e) => Err(e),
    };
    driver.abort();
    outcome
}
