// Text files an agent imports (prompt templates, say): `orchestr8 build`
// bundles them into the component as strings.
declare module "*.xml" {
  const text: string;
  export default text;
}
declare module "*.txt" {
  const text: string;
  export default text;
}
declare module "*.md" {
  const text: string;
  export default text;
}
