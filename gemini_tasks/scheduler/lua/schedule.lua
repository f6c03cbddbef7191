-- Put a job among those its queue feeds from (a no-op if it is there, paused or
-- cancelled): after new prompts were queued, or when a paused job resumes.
-- KEYS     {p}:job:<job>, naming the hash slot of the job's keys
-- ARGV     tag, job
schedule(ARGV[2])
return 1
