SELECT event_id, ts, user_id, event_type, page, json_extract(device, '$.os'),
       CASE WHEN amount IS NULL THEN 'NULL' ELSE printf('%.2f', amount) END,
       (SELECT count(*) FROM pragma_table_info('click_events')
         WHERE name IN ('referrer', 'amount_cents'))
FROM click_events ORDER BY event_id;
