"""Retention: citizen data older than RETENTION_DAYS is deleted (README "Data retention").

Without it every chat, Zalo payload and thumbs-up stayed in the database forever. What is
deleted once older than the limit:

* conversations (Rasa's `events`), whole: a sender's events go together once the *last* of
  them is older than the limit, never half a conversation; with them the NLU inbox's
  decisions on them (`nlu_reviews`: they point at event ids a new row could reuse on SQLite);
  the inbox items themselves are read from `events`, so they go with the conversation;
* Zalo payloads: events (`zalo_inbox`) answered, discarded or given up on, and replies
  (`zalo_outbox`) sent, undeliverable, given up on or discarded; never pending work (an event
  waiting for its answer, a reply waiting to be sent, an event with a reply still pending),
  nor a reply a kept hand-over thread shows;
* hand-overs closed before the limit, with their messages (`handovers`, `handover_messages`:
  the citizen's and the agents' words, the citizen's address);
* thumbs up / down with the rated answer (`feedback`), and the hashed status look-ups
  (`status_lookups`) when no new look-up has pruned them.

Kept: the catalog and fee rules, application statuses (no personal data), operators, the
model registry, and the audit log (operators' actions). The audit log holds citizen words
only in `nlu.correct` entries: the training example an operator made of a message, which is
training data kept in data/nlu/corrections.yml anyway. Each retention run adds one audit
entry itself (`retention.run`, the counts), so that deletions are accounted for.

It runs in every gateway (`retention_ctx`: a minute after start, then every hour it checks
whether a run is due, i.e. none completed in the last 23 hours), so `bot run` needs no cron;
`bot retention run [--dry-run]` runs it by hand. Several gateways share the database: a
named lock row (bot.registry.locks, "retention") lets one run at a time, and the audit entry
of the last run tells the others it is not due. Rows go in batches, each its own short
transaction, with the condition checked again in the DELETE itself (a dead letter retried
meanwhile is pending work again), so neither SQLite's write lock nor PostgreSQL row locks
are held for long, and the gateway runs it in a thread, off the event loop.

Modules: `purge` (what is deleted, in batches), `runs` (lock, audit entry, the gateway's
periodic task), `cli` (`bot retention run`).
"""
