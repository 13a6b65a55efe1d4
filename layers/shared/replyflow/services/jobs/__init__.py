"""The scheduled jobs of docs/jobs.md (EventBridge Scheduler in AWS, the local scheduler
locally, ``replyflow jobs run NAME`` by hand).

Every job:
- is idempotent: running it twice, or again after a crash at any point, converges on the same state;
- takes its collaborators as arguments (ports in :mod:`replyflow.ports`), never reads
  settings, and is wired in :mod:`replyflow.wiring.jobs`;
- returns a :class:`~replyflow.services.jobs.common.JobResult`; the runner logs it as one summary
  line (counts and duration) and emits the counts as metrics.
"""
