"""Pure, synchronous domain model: no I/O, no outer libraries but phonenumbers."""
