//! An in-memory store, for tests and throwaway runs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, PoisonError};

use super::{
    Applied, Change, ExecutionPage, ExecutionQuery, ExecutionRecord, JournalEntry, NewEntry, Store,
    StoreError, interrupted_entry, page,
};
use crate::execution::ExecutionStatus;

#[derive(Default)]
struct Inner {
    executions: BTreeMap<String, (u64, ExecutionRecord)>,
    journals: BTreeMap<String, Vec<JournalEntry>>,
    created: u64,
    cancel_requested: BTreeSet<String>,
}

/// Executions and journals in memory; gone with the process.
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn push(inner: &mut Inner, id: &str, entries: &[NewEntry]) -> Vec<u64> {
    let journal = inner.journals.entry(id.to_string()).or_default();
    entries
        .iter()
        .map(|e| {
            let seq = journal.len() as u64 + 1;
            journal.push(e.clone().stored(seq));
            seq
        })
        .collect()
}

fn apply(inner: &mut Inner, change: &Change) -> Result<Vec<u64>, StoreError> {
    let id = change.execution_id();
    match change {
        Change::Create(record) => {
            if let Some(key) = &record.idempotency_key
                && inner
                    .executions
                    .values()
                    .any(|(_, r)| r.idempotency_key.as_ref() == Some(key))
            {
                return Err(StoreError::DuplicateKey(key.clone()));
            }
            inner.created += 1;
            let created = inner.created;
            inner.executions.insert(
                record.id.to_string(),
                (created, ExecutionRecord::clone(record)),
            );
            Ok(Vec::new())
        }
        Change::Running(_) => {
            if let Some((_, record)) = inner.executions.get_mut(id)
                && record.status == ExecutionStatus::Pending
            {
                record.status = ExecutionStatus::Running;
            }
            Ok(Vec::new())
        }
        Change::Resume { owner_pid, .. } => {
            let (_, record) = inner
                .executions
                .get_mut(id)
                .ok_or_else(|| StoreError::UnknownExecution(id.to_string()))?;
            if record.status != ExecutionStatus::Interrupted {
                return Err(StoreError::NotResumable {
                    id: id.to_string(),
                    status: record.status.as_str().to_string(),
                });
            }
            record.status = ExecutionStatus::Running;
            record.owner_pid = *owner_pid;
            record.finished_at = None;
            record.result = None;
            inner.cancel_requested.remove(id);
            Ok(Vec::new())
        }
        Change::Append { entries, .. } => {
            if !inner.executions.contains_key(id) {
                return Err(StoreError::UnknownExecution(id.to_string()));
            }
            Ok(push(inner, id, entries))
        }
        Change::Finish {
            status,
            finished_at,
            result,
            ..
        } => {
            let (_, record) = inner
                .executions
                .get_mut(id)
                .ok_or_else(|| StoreError::UnknownExecution(id.to_string()))?;
            record.status = *status;
            record.finished_at = Some(finished_at.clone());
            record.result = Some(result.clone());
            Ok(Vec::new())
        }
    }
}

impl Store for MemoryStore {
    fn commit(&self, changes: &[Change]) -> Result<Vec<Applied>, StoreError> {
        let mut inner = self.lock();
        Ok(changes.iter().map(|c| apply(&mut inner, c)).collect())
    }

    fn execution(&self, id: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self.lock().executions.get(id).map(|(_, r)| r.clone()))
    }

    fn journal(&self, id: &str, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        Ok(self
            .lock()
            .journals
            .get(id)
            .map(|j| {
                j.iter()
                    .filter(|e| e.seq > after)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn last_execution(&self) -> Result<Option<String>, StoreError> {
        Ok(self
            .lock()
            .executions
            .iter()
            .max_by_key(|(_, (created, _))| *created)
            .map(|(id, _)| id.clone()))
    }

    fn list_executions(&self, query: &ExecutionQuery) -> Result<ExecutionPage, StoreError> {
        let inner = self.lock();
        let mut found: Vec<_> = inner
            .executions
            .values()
            .filter(|(created, r)| query.matches(r, *created))
            .map(|(created, r)| (r.summary(), *created))
            .collect();
        found.sort_by_key(|(_, created)| std::cmp::Reverse(*created));
        found.truncate(query.limit + 1);
        Ok(page(found, query.limit))
    }

    fn execution_by_key(&self, key: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        Ok(self
            .lock()
            .executions
            .values()
            .map(|(_, r)| r)
            .find(|r| r.idempotency_key.as_deref() == Some(key))
            .cloned())
    }

    fn release_key(&self, id: &str) -> Result<(), StoreError> {
        if let Some((_, r)) = self.lock().executions.get_mut(id) {
            r.idempotency_key = None;
        }
        Ok(())
    }

    fn request_cancel(&self, id: &str, _at: &str) -> Result<Option<ExecutionRecord>, StoreError> {
        let mut inner = self.lock();
        let record = inner.executions.get(id).map(|(_, r)| r.clone());
        if record.as_ref().is_some_and(|r| !r.status.is_final()) {
            inner.cancel_requested.insert(id.to_string());
        }
        Ok(record)
    }

    fn cancel_requests(&self, owner_pid: u32) -> Result<Vec<String>, StoreError> {
        let inner = self.lock();
        Ok(inner
            .cancel_requested
            .iter()
            .filter(|id| {
                inner
                    .executions
                    .get(id.as_str())
                    .is_some_and(|(_, r)| r.owner_pid == owner_pid && !r.status.is_final())
            })
            .cloned()
            .collect())
    }

    fn mark_interrupted(
        &self,
        at: &str,
        alive: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<String>, StoreError> {
        let mut inner = self.lock();
        let ids: Vec<String> = inner
            .executions
            .iter()
            .filter(|(_, (_, r))| !r.status.is_final() && !alive(r.owner_pid))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            push(&mut inner, id, &[interrupted_entry(at)]);
            if let Some((_, r)) = inner.executions.get_mut(id) {
                r.status = ExecutionStatus::Interrupted;
                r.finished_at = Some(at.to_string());
            }
        }
        Ok(ids)
    }
}
