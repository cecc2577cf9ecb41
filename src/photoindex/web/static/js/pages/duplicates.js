// Duplicates: a placeholder until the curation API (issue 6) exists; nothing to fetch yet.
import { startPage } from "../ui.js";

startPage({ needsApi: false });
