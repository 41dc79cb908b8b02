"""The detect room: observations in, issues out (rules), the health roll-up without
acknowledged issues (acks), the headline, and blocked-on-output watching."""
