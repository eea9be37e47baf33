SELECT count(*), count(DISTINCT event_id), count(DISTINCT _sluice_id) FROM events;
