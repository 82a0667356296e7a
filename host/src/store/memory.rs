//! An in-memory store, for tests and throwaway runs.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde_json::Value;

use super::{ExecutionRecord, JournalEntry, NewEntry, Store, StoreError, interrupted_entry};
use crate::engine::ExecutionStatus;

#[derive(Default)]
struct Inner {
    executions: BTreeMap<String, (u64, ExecutionRecord)>,
    journals: BTreeMap<String, Vec<JournalEntry>>,
    created: u64,
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

impl Store for MemoryStore {
    fn create_execution(&self, record: &ExecutionRecord) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.created += 1;
        let created = inner.created;
        inner
            .executions
            .insert(record.id.clone(), (created, record.clone()));
        Ok(())
    }

    fn append(&self, id: &str, entries: &[NewEntry]) -> Result<Vec<u64>, StoreError> {
        let mut inner = self.lock();
        if !inner.executions.contains_key(id) {
            return Err(StoreError::UnknownExecution(id.to_string()));
        }
        Ok(push(&mut inner, id, entries))
    }

    fn mark_running(&self, id: &str) -> Result<(), StoreError> {
        if let Some((_, record)) = self.lock().executions.get_mut(id)
            && record.status == ExecutionStatus::Pending
        {
            record.status = ExecutionStatus::Running;
        }
        Ok(())
    }

    fn finish_execution(
        &self,
        id: &str,
        status: ExecutionStatus,
        finished_at: &str,
        result: &Value,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        let (_, record) = inner
            .executions
            .get_mut(id)
            .ok_or_else(|| StoreError::UnknownExecution(id.to_string()))?;
        record.status = status;
        record.finished_at = Some(finished_at.to_string());
        record.result = Some(result.clone());
        Ok(())
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
