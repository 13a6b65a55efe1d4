"""Replyflow: multi-tenant Instagram reply automation. The shared layer package."""
