"""The method × model leaderboard: agreement with the experts, faithfulness, sanity and robustness of
every CAM method on every model (:mod:`~dermx.evaluate.leaderboard.run`)."""
