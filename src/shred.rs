//! Crypto-shredding: destroying the keys that guard a tenant, a conversation, a user or one
//! time window (epoch) of a conversation, so that all data under them becomes unreadable at once,
//! whatever its size.
//!
//! A shred deletes the scope's wrapped keys with RocksDB range deletions (constant time: one
//! range tombstone per key range, whatever the number of keys or records under them), removes the
//! directory entries that link the scope's internal id to its name, and writes a tombstone naming
//! the scope by internal ids; all in one WriteBatch, fsynced before the call returns. Reads of data
//! in scope then give [`Error::Shredded`]; [`Vault::purge`] removes the records from the files.
//!
//! Not yet here (see the shredding issue): re-versioning the key path so that old copies of the
//! directory cannot be decrypted with the live keys, the receipt chain with MACs, queued erasure
//! under a legal hold, and the `chatvault shred` command.

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::codec::{self, prefix_successor, Iid, KeyBuf};
use crate::error::{Error, Result};
use crate::model::{ConversationId, TenantId, UserId};
use crate::retention::{Actor, HoldScope};
use crate::vault::{cf, KeyId, Vault};

/// What to shred.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShredScope {
    /// The whole tenant: its KEK and every key under it.
    Tenant,
    /// One conversation: its key and every epoch key under it.
    Conversation(ConversationId),
    /// One user: their key, profile and directory entry. Under the default erasure policy the
    /// messages they wrote become unreadable too; under `AuthorErased` they stay readable,
    /// shown as written by an erased user.
    User(UserId),
    /// The epoch (time window, a UTC day by default) of a conversation that contains `at_ms`.
    Window {
        /// The conversation.
        conversation: ConversationId,
        /// Any time inside the window, UTC ms.
        at_ms: i64,
    },
}

/// What a shred did. Internal ids only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShredReceipt {
    /// The tenant.
    pub tenant: TenantId,
    /// The scope.
    pub scope: ShredScope,
    /// When, UTC ms.
    pub at_ms: i64,
    /// The key-id ranges destroyed (hex of the `keys` column family's key prefixes).
    pub key_ranges: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Tombstone {
    pub receipt: ShredReceipt,
    /// For windows: the window's bounds, UTC ms.
    pub window: Option<(i64, i64)>,
}

impl Vault {
    /// Shreds `scope` of `tenant` (admins only): destroys exactly the keys that guard it, durably
    /// (fsync) before returning, whatever the vault's durability. Errors: [`Error::LegalHold`]
    /// (nothing destroyed) when a legal hold could cover any part of the scope;
    /// [`Error::Shredded`] if the scope (or its tenant) is already shredded;
    /// [`Error::PermissionDenied`]; [`Error::NotFound`].
    pub fn shred(&self, tenant: TenantId, actor: Actor, scope: ShredScope) -> Result<ShredReceipt> {
        let i = &self.inner;
        let t = tenant.0;
        if !actor.is_admin() {
            return Err(Error::PermissionDenied(
                "only a tenant admin may shred".into(),
            ));
        }
        let ts = i.tenant_state(t)?;
        // Names are needed to remove directory entries; read them before the keys go.
        let (dir_entries, window) = match scope {
            ShredScope::Tenant => {
                let name = self
                    .tenants()?
                    .into_iter()
                    .find(|x| x.id == tenant)
                    .map(|x| x.name)
                    .ok_or_else(|| Error::NotFound {
                        what: format!("tenant {tenant}"),
                    })?;
                (vec![i.tenant_dir_entry(&name)], None)
            }
            ShredScope::Conversation(c) => {
                let info = self.conversation(tenant, c)?;
                (
                    vec![i.dir_entry(&ts, codec::meta::DIR_CONV, &info.external_id)],
                    None,
                )
            }
            ShredScope::User(u) => {
                let info = self.user(tenant, u)?;
                (
                    vec![i.dir_entry(&ts, codec::meta::DIR_USER, &info.external_id)],
                    None,
                )
            }
            ShredScope::Window {
                conversation,
                at_ms,
            } => {
                self.conversation(tenant, conversation)?;
                if at_ms < 0 {
                    return Err(Error::InvalidInput(
                        "a window starts in 1970 or later".into(),
                    ));
                }
                let e = at_ms as u64 / ts.epoch_ms;
                let start = (e * ts.epoch_ms) as i64;
                (
                    Vec::new(),
                    Some((e as u32, start, start + ts.epoch_ms as i64)),
                )
            }
        };

        let _g = i.policy_lock.lock();
        let now = i.opts.clock.now_ms();
        let mut tr = i.retention.current().tenant(t).cloned().unwrap_or_default();
        let held = match scope {
            ShredScope::Tenant => !tr.holds.is_empty(),
            ShredScope::Conversation(c) => tr.held(c.0, None),
            ShredScope::Window { conversation, .. } => tr.held(conversation.0, None),
            ShredScope::User(u) => tr.holds.values().any(|h| match h.scope {
                HoldScope::Custodian(x) => x == u,
                _ => true,
            }),
        };
        if held {
            return Err(Error::LegalHold {
                what: format!("{scope:?} of tenant {tenant}"),
            });
        }

        let kcf = i.cf(cf::KEYS)?;
        let meta = i.cf(cf::META)?;
        let mut batch = WriteBatch::default();
        let mut ranges: Vec<Vec<u8>> = Vec::new();
        match scope {
            ShredScope::Tenant => {
                for kind in [
                    codec::keys::TENANT_KEK,
                    codec::keys::CONVERSATION,
                    codec::keys::EPOCH,
                    codec::keys::USER,
                    codec::keys::INDEX,
                ] {
                    ranges.push(KeyBuf::tag(kind).u64(t).into_vec());
                }
            }
            ShredScope::Conversation(c) => {
                ranges.push(
                    KeyBuf::tag(codec::keys::CONVERSATION)
                        .u64(t)
                        .u64(c.0)
                        .into_vec(),
                );
                ranges.push(KeyBuf::tag(codec::keys::EPOCH).u64(t).u64(c.0).into_vec());
            }
            ShredScope::User(u) => {
                ranges.push(KeyBuf::tag(codec::keys::USER).u64(t).u64(u.0).into_vec());
                // The profile, and the index of the user's conversations.
                batch.delete_cf(
                    &meta,
                    KeyBuf::tag(codec::meta::USER).u64(t).u64(u.0).into_vec(),
                );
                let p = KeyBuf::tag(codec::meta::USER_CONV)
                    .u64(t)
                    .u64(u.0)
                    .into_vec();
                batch.delete_range_cf(&meta, &p, &prefix_successor(&p).unwrap_or_default());
            }
            ShredScope::Window { conversation, .. } => {
                let e = window.map(|w| w.0).unwrap_or_default();
                ranges.push(
                    KeyBuf::tag(codec::keys::EPOCH)
                        .u64(t)
                        .u64(conversation.0)
                        .u32(e)
                        .into_vec(),
                );
            }
        }
        for r in &ranges {
            batch.delete_range_cf(&kcf, r, &prefix_successor(r).unwrap_or_default());
        }
        for d in &dir_entries {
            batch.delete_cf(&meta, d);
        }
        let receipt = ShredReceipt {
            tenant,
            scope,
            at_ms: now,
            key_ranges: ranges.iter().map(hex::encode).collect(),
        };
        let (kind, id, start) = match scope {
            ShredScope::Tenant => (1u8, 0, 0),
            ShredScope::Conversation(c) => (2, c.0, 0),
            ShredScope::User(u) => (3, u.0, 0),
            ShredScope::Window { conversation, .. } => {
                (4, conversation.0, window.map(|w| w.1).unwrap_or_default())
            }
        };
        let tomb_key = KeyBuf::tag(codec::meta::SHRED)
            .u64(t)
            .u8(kind)
            .u64(id)
            .time(start)
            .into_vec();
        let tomb = Tombstone {
            receipt: receipt.clone(),
            window: window.map(|w| (w.1, w.2)),
        };
        batch.put_cf(
            &meta,
            tomb_key,
            postcard::to_stdvec(&tomb)
                .map_err(|e| Error::InvalidInput(format!("cannot encode tombstone: {e}")))?,
        );
        // Durable before the call returns, whatever the vault's default durability.
        // The path to the destroyed keys gets new key versions at the next purge, so that old
        // copies of the directory cannot be opened with the live keys (`rekey.rs`).
        let mark_conv = match scope {
            ShredScope::Window { conversation, .. } => conversation.0,
            _ => 0,
        };
        crate::rekey::mark(i, &mut batch, t, mark_conv)?;
        i.write_sync(batch, "shredding")?;
        apply_tombstone(&mut tr.shred, &tomb);
        self.publish_retention(t, tr);
        self.forget_keys(t, scope, window.map(|w| w.0));
        tracing::info!(tenant = t, ?scope, "shredded");
        Ok(receipt)
    }

    fn forget_keys(&self, t: Iid, scope: ShredScope, epoch: Option<u32>) {
        let i = &self.inner;
        i.cache.remove_where(|k| match (scope, k) {
            (ShredScope::Tenant, k) => key_tenant(k) == t,
            (ShredScope::Conversation(c), KeyId::Conv { t: kt, c: kc, .. })
            | (ShredScope::Conversation(c), KeyId::Epoch { t: kt, c: kc, .. })
            | (ShredScope::Conversation(c), KeyId::Dek { t: kt, c: kc, .. }) => {
                *kt == t && *kc == c.0
            }
            (ShredScope::User(u), KeyId::User { t: kt, u: ku, .. }) => *kt == t && *ku == u.0,
            (ShredScope::User(u), KeyId::Dek { t: kt, a, .. }) => *kt == t && *a == u.0,
            (ShredScope::Window { conversation, .. }, KeyId::Epoch { t: kt, c, e, .. })
            | (ShredScope::Window { conversation, .. }, KeyId::Dek { t: kt, c, e, .. }) => {
                *kt == t && *c == conversation.0 && Some(*e) == epoch
            }
            _ => false,
        });
        if scope == ShredScope::Tenant {
            i.tenants.write().remove(&t);
        }
    }
}

fn key_tenant(k: &KeyId) -> Iid {
    match k {
        KeyId::TenantKek { t, .. }
        | KeyId::Conv { t, .. }
        | KeyId::Epoch { t, .. }
        | KeyId::User { t, .. }
        | KeyId::Index { t, .. }
        | KeyId::Dek { t, .. } => *t,
    }
}

/// Adds a tombstone to the in-memory shred state.
pub(crate) fn apply_tombstone(s: &mut crate::retention::ShredState, tomb: &Tombstone) {
    match tomb.receipt.scope {
        ShredScope::Tenant => s.tenant = true,
        ShredScope::Conversation(c) => {
            s.conversations.insert(c.0);
        }
        ShredScope::User(u) => {
            s.users.insert(u.0);
        }
        ShredScope::Window { conversation, .. } => {
            if let Some((a, b)) = tomb.window {
                s.windows.push((conversation.0, a, b));
            }
        }
    }
}
