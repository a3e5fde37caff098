-- When tokens were last issued under a grant (code redemption, refresh), for the customer's
-- account page. Kept to within a minute: the write is skipped while the stored value is more
-- recent than that, so frequent refreshes do not write every time.
ALTER TABLE grants ADD COLUMN last_used_at TIMESTAMPTZ;
