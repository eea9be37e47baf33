SELECT event_id, event_type, user_id, typeof(user_id), round(amount, 2), device, tags
FROM click_events ORDER BY event_id;
