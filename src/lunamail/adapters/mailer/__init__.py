"""Mailer adapters: ``smtp`` (pipelined SMTP client), ``ses`` (Amazon SES SendRawEmail), ``memory`` (tests)."""
