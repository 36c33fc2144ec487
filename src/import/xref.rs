//! External references: the source format's ids and fields for imported messages and
//! conversations (a Slack `ts`, a Mattermost post's `create_at` and author, a channel's topic),
//! sealed under the message's DEK (a conversation's own under the conversation key), with a
//! blind index from an external message id to the message (DESIGN.md §10, meta `0x1F` and
//! `0x20`).

use std::collections::BTreeMap;

use rocksdb::WriteBatch;
use serde::{Deserialize, Serialize};

use crate::codec::{self, be64, KeyBuf};
use crate::envelope::{self, MetaKind, RecordHeader};
use crate::error::{Error, Result};
use crate::keys::{self, ReadyKey};
use crate::vault::{cf, from_postcard, to_postcard, KeyId};
use crate::{Appended, ConversationId, MessageId, NewMessage, TenantId, Vault};

/// What a source format knows about a message or a conversation that chatvault's model has no
/// place for, kept (sealed) for exact exports back to that format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalRef {
    /// The source format: `slack` or `mattermost`.
    pub source: String,
    /// The message's id in that format (a Slack `ts`; for Mattermost `create_at:user`, or
    /// `root/create_at:user` for a reply); for a conversation, its external id.
    pub id: String,
    /// Further fields by name (for example `subtype`, `thread_ts`, `bot_id`, `team`).
    pub fields: BTreeMap<String, String>,
}

impl ExternalRef {
    /// A field's value, if set.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

fn ref_place(t: TenantId, c: ConversationId, id: MessageId) -> Vec<u8> {
    KeyBuf::tag(codec::meta::EXTERNAL_REF)
        .u64(t.0)
        .u64(c.0)
        .u64(id)
        .into_vec()
}

impl Vault {
    fn external_index_key(
        &self,
        t: TenantId,
        c: ConversationId,
        source: &str,
        external_id: &str,
    ) -> Result<Vec<u8>> {
        let ts = self.inner.tenant_state(t.0)?;
        let mut data = Vec::with_capacity(8 + source.len() + 1 + external_id.len());
        data.extend_from_slice(&c.0.to_be_bytes());
        data.extend_from_slice(source.as_bytes());
        data.push(0);
        data.extend_from_slice(external_id.as_bytes());
        Ok(KeyBuf::tag(codec::meta::EXTERNAL_INDEX)
            .u64(t.0)
            .u64(c.0)
            .bytes(&keys::blind_index(
                &ts.dir_key,
                &[codec::meta::DIR_MESSAGE],
                &data,
            ))
            .into_vec())
    }

    /// The message imported from `source` with this external id, if any (one HMAC and one
    /// point get).
    pub fn external_message_id(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        source: &str,
        external_id: &str,
    ) -> Result<Option<MessageId>> {
        let k = self.external_index_key(tenant, conv, source, external_id)?;
        match self.inner.get(cf::META, &k)? {
            Some(v) => be64(&v)
                .map(Some)
                .ok_or_else(|| Error::corrupt("external message index entry", "not 8 bytes")),
            None => Ok(None),
        }
    }

    /// The external reference of message `id` (0: of the conversation itself), if it was
    /// imported with one and the message is still stored. A message's reference is sealed
    /// under the message's DEK (found from the message record's header), so it becomes
    /// unreadable with the message: [`Error::Shredded`] or [`Error::NotFound`] when its keys are
    /// gone; [`Error::Authentication`], [`Error::Corrupt`].
    pub fn external_ref(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        id: MessageId,
    ) -> Result<Option<ExternalRef>> {
        let i = &self.inner;
        i.check_conversation_alive(tenant.0, conv.0)?;
        let place = ref_place(tenant, conv, id);
        let Some(v) = i.get(cf::META, &place)? else {
            return Ok(None);
        };
        let what = || format!("external reference of message {id} in conversation {conv}");
        let kv = envelope::meta_key_version(&v, MetaKind::ExternalRef, what)?;
        let key = if id == 0 {
            i.key(KeyId::Conv {
                t: tenant.0,
                c: conv.0,
                v: kv,
            })?
        } else {
            let mplace = codec::message_key(tenant.0, conv.0, id);
            let Some(rec) = i.get(cf::MESSAGES, &mplace)? else {
                return Ok(None);
            };
            let h = RecordHeader::decode(&rec, what)?;
            i.dek(
                tenant.0,
                conv.0,
                h.epoch,
                h.epoch_version,
                h.author,
                h.author_version,
            )?
        };
        let pt = envelope::open_meta(&key.cipher, &v, MetaKind::ExternalRef, &place, what)?;
        Ok(Some(from_postcard(&pt, what)?))
    }

    fn seal_external_ref(
        &self,
        key: &ReadyKey,
        place: &[u8],
        version: u32,
        r: &ExternalRef,
    ) -> Result<Vec<u8>> {
        envelope::seal_meta(
            &key.cipher,
            MetaKind::ExternalRef,
            version,
            place,
            &zeroize::Zeroizing::new(to_postcard(r)?),
        )
    }

    /// Stores (or replaces) the conversation's own external reference (message id 0), under
    /// the conversation key (holding `create_lock`, as every record sealed under it, so that a
    /// re-versioning pass does not miss it).
    pub(crate) fn put_conversation_ref(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        r: &ExternalRef,
    ) -> Result<()> {
        let i = &self.inner;
        let _g = i.create_lock.lock();
        let ckey = i.key(KeyId::Conv {
            t: tenant.0,
            c: conv.0,
            v: 0,
        })?;
        let place = ref_place(tenant, conv, 0);
        let sealed = self.seal_external_ref(&ckey, &place, ckey.version, r)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(&i.cf(cf::META)?, &place, sealed);
        i.write_sync(batch, "storing a conversation's external reference")
    }

    /// Appends messages with their external references (one each, in order) in one
    /// WriteBatch: the messages, their references (sealed under each message's DEK, with its
    /// AAD binding the place `0x20 t c id`) and their index entries land together.
    pub(crate) fn append_with_refs(
        &self,
        tenant: TenantId,
        conv: ConversationId,
        msgs: &[NewMessage],
        refs: &[ExternalRef],
    ) -> Result<Appended<Vec<MessageId>>> {
        if msgs.len() != refs.len() {
            return Err(Error::InvalidInput(
                "one external reference per message is needed".into(),
            ));
        }
        self.append_batch_with(tenant, conv, msgs, &mut |sealed, batch| {
            let meta = self.inner.cf(cf::META)?;
            for ((id, dek), r) in sealed.iter().zip(refs) {
                let place = ref_place(tenant, conv, *id);
                batch.put_cf(
                    &meta,
                    &place,
                    self.seal_external_ref(dek, &place, dek.version, r)?,
                );
                let k = self.external_index_key(tenant, conv, &r.source, &r.id)?;
                batch.put_cf(&meta, k, id.to_be_bytes());
            }
            Ok(())
        })
    }
}
