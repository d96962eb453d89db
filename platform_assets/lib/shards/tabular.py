"""The tabular features a sample carries, in the order of its `features` vector: what the shards'
writer fills, and what readers without torch (the data diff) name them by."""

TABULAR = [
    "posted_hour_local",
    "posted_weekday_local",
    "title_length",
    "title_words",
    "author_tenure_days",
    "author_logins_today",
    "author_likes_given_7d",
    "author_likes_received_7d",
    "author_posts_30d",
    "author_sessions_7d",
]
