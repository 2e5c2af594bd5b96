// Every page (base.html): show times in the browser's time zone. A file, not an inline
// script: the Content-Security-Policy runs scripts from our own static files only.
import { localizeTimes } from "./common.js";

localizeTimes(document);
