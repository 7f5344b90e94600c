-- Erasing a user (issue 22, GDPR article 17): the profile row stays, because messages, groups,
-- threads, webhooks and confirmations name it, but pseudonymised ("Erased user", no email), and
-- marked erased so that a new token of theirs is refused instead of writing their name back.
-- erased_by is the user who asked (themselves, or an admin of their organization); NULL when an
-- operator erased them with `hub erase user`.
ALTER TABLE user_profiles ADD COLUMN erased_at TIMESTAMPTZ;
ALTER TABLE user_profiles ADD COLUMN erased_by UUID REFERENCES user_profiles (id);
