SELECT event_id, event_type, user_id FROM events ORDER BY event_id;
