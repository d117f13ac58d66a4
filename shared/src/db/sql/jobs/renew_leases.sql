-- jobs::renew_leases: $1 worker, $2 job ids, $3 lease in seconds.
update jobs set lease_expires_at = now() + make_interval(secs => $3), updated_at = now()
where id = any($2) and state = 'running' and lease_owner = $1
returning id as "id!: JobId", cancel_requested_at is not null as "cancel_requested!"
