"""Search: text → image, image → image, with filters."""
