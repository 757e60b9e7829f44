export { crawlWorkflow } from './crawl';
export { progressQuery } from './queries';
