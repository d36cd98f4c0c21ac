-- The request path never writes the audit store: its records travel through the outbox and the
-- sink (system role) chains them. An INSERT by the app role could only forge a record
-- (security review, #18).
revoke insert on audit_events from warung_app;
