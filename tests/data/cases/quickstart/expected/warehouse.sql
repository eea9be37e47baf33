SELECT event_id, ts, user_id, event_type, page, json_extract(device, '$.os'),
       CAST(amount_cents AS INTEGER),
       (SELECT count(*) FROM pragma_table_info('click_events') WHERE name = 'referrer')
FROM click_events ORDER BY event_id;
