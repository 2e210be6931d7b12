"""Human handover: the queue of conversations a person holds, replies through their channel."""
